"""The webhook's fast path (``processor.web.webhook.FastPath``) answers exactly as the Flask
route does: the same status, headers and text for a stored body, and every other request is
left to Flask with its bytes intact."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

from processor.context import Context
from processor.web import create_app
from processor.web.webhook import FastPath
from tests import payloads as p
from tests.conftest import signed_headers

GOOD = p.raw(p.body(p.change(statuses=[p.status("wamid.F", "delivered", 1_700_000_000)])))
IGNORED = p.raw({"object": "page", "entry": []})


def answer(app: Any, data: bytes, headers: dict[str, str], **extra: Any) -> tuple[Any, ...]:
    environ = EnvironBuilder(
        path="/webhook", method="POST", data=data, headers=headers, **extra
    ).get_environ()
    body, status, reply_headers = run_wsgi_app(app, environ)
    return status, sorted(reply_headers.to_wsgi_list()), b"".join(body)


def refuse(environ: Any, start: Any) -> Iterable[bytes]:
    raise AssertionError("the fast path handed a storable body to Flask")


def test_a_stored_body_gets_the_flask_answer_without_flask(ctx: Context) -> None:
    app = create_app(ctx=ctx)
    fast: FastPath = app.wsgi_app  # type: ignore[assignment]
    headers = signed_headers(GOOD)
    by_flask = answer(fast.flask, GOOD, headers)
    by_fast = answer(FastPath(refuse, ctx), GOOD, headers)  # Flask is never called
    assert by_fast == by_flask
    assert by_fast[0] == "200 OK" and by_fast[2] == b"ok"
    assert ("X-Content-Type-Options", "nosniff") in by_fast[1]
    assert [e.body for e in ctx.inbox.entries()] == [GOOD, GOOD]


@pytest.mark.parametrize(
    ("data", "headers", "extra"),
    [
        (GOOD, {"X-Hub-Signature-256": "sha256=" + "0" * 64}, {}),
        (GOOD, {}, {}),
        (GOOD, None, {"content_type": "text/plain"}),
        (b"{not json", None, {}),
        (b"[1, 2]", None, {}),
        (IGNORED, None, {}),
        (b"", None, {}),
    ],
    ids=["bad-signature", "no-signature", "text-plain", "bad-json", "not-object", "ignored",
         "empty"],
)  # fmt: skip
def test_everything_else_is_answered_by_flask_from_the_same_bytes(
    ctx: Context, data: bytes, headers: dict[str, str] | None, extra: dict[str, Any]
) -> None:
    app = create_app(ctx=ctx)
    fast: FastPath = app.wsgi_app  # type: ignore[assignment]
    sent = headers if headers is not None else signed_headers(data)
    kwargs = {"content_type": "application/json", **extra}
    sent = {k: v for k, v in sent.items() if k.lower() != "content-type"}
    assert answer(app, data, sent, **kwargs) == answer(fast.flask, data, sent, **kwargs)
    assert ctx.inbox.archived() == 0


def test_an_oversized_body_is_refused_by_flask_unread(ctx: Context) -> None:
    app = create_app(ctx=ctx)
    big = b"{" + b" " * ctx.settings.max_body_bytes + b"}"
    status, _, _ = answer(app, big, signed_headers(big))
    assert status.startswith("413")
    assert ctx.inbox.archived() == 0
