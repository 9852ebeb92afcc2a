"""``/webhook`` through the Flask app against a real Redis: handshake, signature, limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from processor.context import Context, build_context
from processor.settings import load_settings
from processor.web import create_app
from tests import payloads as p
from tests.conftest import SECRET, VERIFY, signed_headers

GOOD = p.raw(p.body(p.change(statuses=[p.status("wamid.X", "delivered", 1_700_000_000)])))


def stored(ctx: Context) -> int:
    return int(ctx.redis.xlen(ctx.keys.inbox))


def stored_bodies(ctx: Context) -> list[bytes]:
    """The raw bodies in the inbox, in arrival order (what the workers will read)."""
    return [entry.body for entry in ctx.inbox.entries()]


class TestHandshake:
    def test_echoes_the_challenge_as_plain_text(self, client: Any) -> None:
        """hub.mode=subscribe and the right verify token -> 200 with exactly the challenge."""
        reply = client.get(
            "/webhook",
            query_string={
                "hub.mode": "subscribe",
                "hub.verify_token": VERIFY,
                "hub.challenge": "1158201444",
            },
        )
        assert reply.status_code == 200
        assert reply.data == b"1158201444"
        assert reply.mimetype == "text/plain"

    @pytest.mark.parametrize(
        "query",
        [
            {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
            {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
            {"hub.verify_token": VERIFY, "hub.challenge": "1"},
            {"hub.mode": "subscribe", "hub.challenge": "1"},
            {"hub.mode": "subscribe", "hub.verify_token": VERIFY},
        ],
        ids=["wrong-token", "wrong-mode", "no-mode", "no-token", "no-challenge"],
    )
    def test_anything_else_is_forbidden(self, client: Any, query: dict[str, str]) -> None:
        assert client.get("/webhook", query_string=query).status_code == 403


class TestSignature:
    def test_signed_body_is_stored_and_accepted(self, client: Any, ctx: Context) -> None:
        reply = client.post("/webhook", data=GOOD, headers=signed_headers(GOOD))
        assert (reply.status_code, reply.data) == (200, b"ok")
        assert stored_bodies(ctx) == [GOOD]  # byte for byte
        assert ctx.queue.count == 1  # and a drain job will process it

    @pytest.mark.parametrize(
        "header",
        [
            None,
            "",
            "sha256=" + "0" * 64,
            signed_headers(GOOD, "another-secret")["X-Hub-Signature-256"],
            signed_headers(GOOD)["X-Hub-Signature-256"].removeprefix("sha256="),
            "sha1=" + signed_headers(GOOD)["X-Hub-Signature-256"].removeprefix("sha256="),
            "sha256=zz",
        ],
        ids=["missing", "empty", "zeros", "other-secret", "no-prefix", "sha1-prefix", "garbage"],
    )
    def test_bad_signature_is_401_and_nothing_is_stored(
        self, client: Any, ctx: Context, header: str | None
    ) -> None:
        headers = {"Content-Type": "application/json"}
        if header is not None:
            headers["X-Hub-Signature-256"] = header
        reply = client.post("/webhook", data=GOOD, headers=headers)
        assert reply.status_code == 401
        assert stored(ctx) == 0

    def test_signature_is_over_the_raw_bytes(self, client: Any, ctx: Context) -> None:
        """A body with escaped unicode is verified as sent, not as re-serialised."""
        body = (
            b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":'
            b'"messages","value":{"x":"\\u00e4\\u00f6"}}]}]}'
        )
        reply = client.post("/webhook", data=body, headers=signed_headers(body))
        assert reply.status_code == 200
        assert stored_bodies(ctx) == [body]  # stored as sent, escapes and all
        reserialised = json.dumps(json.loads(body)).encode()
        headers = signed_headers(reserialised)
        assert client.post("/webhook", data=body, headers=headers).status_code == 401


class TestLimits:
    def test_body_over_the_limit_is_413(self, client: Any, ctx: Context) -> None:
        big = b'{"pad":"' + b"x" * (ctx.settings.max_body_bytes + 10) + b'"}'
        reply = client.post("/webhook", data=big, headers=signed_headers(big))
        assert reply.status_code == 413
        assert stored(ctx) == 0

    def test_meta_maximum_of_3_mb_is_accepted(self, client: Any, ctx: Context) -> None:
        doc = p.body(p.change(statuses=[p.status("wamid.X", "delivered", 1_700_000_000)]))
        doc["pad"] = "x" * (3 * 1024 * 1024)
        body = p.raw(doc)
        assert client.post("/webhook", data=body, headers=signed_headers(body)).status_code == 200
        assert stored_bodies(ctx) == [body]

    @pytest.mark.parametrize(
        "body",
        [
            b"not json",
            b"[1, 2]",
            b'"text"',
            b"\xff\xfe{}",
            b"[" * 5000 + b"]" * 5000,
            b'{"a":' * 100 + b"1" + b"}" * 100,
            b'{"n": ' + b"9" * 5000 + b"}",
        ],
        ids=["text", "array", "string", "bad-utf8", "deep-array", "deep-object", "huge-int"],
    )
    def test_signed_body_that_is_not_a_json_object_is_400(
        self, client: Any, ctx: Context, body: bytes
    ) -> None:
        reply = client.post("/webhook", data=body, headers=signed_headers(body))
        assert reply.status_code == 400
        assert stored(ctx) == 0

    def test_wrong_content_type_is_415(self, client: Any, ctx: Context) -> None:
        headers = {**signed_headers(GOOD), "Content-Type": "text/plain"}
        assert client.post("/webhook", data=GOOD, headers=headers).status_code == 415
        assert stored(ctx) == 0


def _one_change(field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": field, "value": value}]}],
    }


class TestOtherWebhooks:
    @pytest.mark.parametrize(
        "doc",
        [
            _one_change("phone_number_quality_update", {"event": "FLAGGED"}),
            _one_change("security", {"event": "PIN_CHANGED"}),
            {"object": "page", "entry": [{"id": "1", "changes": [{"field": "messages"}]}]},
            {"object": "whatsapp_business_account"},
        ],
        ids=["quality-update", "security", "other-object", "no-entries"],
    )
    def test_are_acknowledged_and_ignored(
        self, client: Any, ctx: Context, doc: dict[str, Any]
    ) -> None:
        body = p.raw(doc)
        assert client.post("/webhook", data=body, headers=signed_headers(body)).status_code == 200
        assert stored(ctx) == 0

    @pytest.mark.parametrize(
        "doc",
        [
            _one_change(
                "message_template_status_update", {"event": "APPROVED", "message_template_id": 1}
            ),
            _one_change("template_category_update", {"message_template_id": 1}),
            _one_change("account_update", {"event": "VOLUME_BASED_PRICING_TIER_UPDATE"}),
        ],
        ids=["template-status", "template-category", "account-update"],
    )
    def test_template_and_account_webhooks_are_stored_before_200(
        self, client: Any, ctx: Context, doc: dict[str, Any]
    ) -> None:
        """The fields reconciliation reads travel like `messages`: durable, then 200."""
        body = p.raw(doc)
        assert client.post("/webhook", data=body, headers=signed_headers(body)).status_code == 200
        assert stored(ctx) == 1


def test_redis_unreachable_is_503(environ: dict[str, str]) -> None:
    """When the body cannot be stored Meta must retry: answer 503, never 200."""
    settings = load_settings(
        {**environ, "REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_TIMEOUT_SECONDS": "0.2"}
    )
    ctx = build_context(settings)
    app = create_app(ctx=ctx)
    reply = app.test_client().post("/webhook", data=GOOD, headers=signed_headers(GOOD))
    assert reply.status_code == 503
    assert app.test_client().get("/healthz").status_code == 503


def test_one_post_queues_at_most_one_job(client: Any, ctx: Context) -> None:
    """Many POSTs before a worker starts share one drain job (never one job per event)."""
    for _ in range(20):
        assert client.post("/webhook", data=GOOD, headers=signed_headers(GOOD)).status_code == 200
    assert stored_bodies(ctx) == [GOOD] * 20
    assert ctx.queue.count == 1


def test_secret_required_at_start(environ: dict[str, str]) -> None:
    from processor.errors import SettingsError

    missing = {k: v for k, v in environ.items() if k not in ("META_APP_SECRET", "API_TOKEN")}
    with pytest.raises(SettingsError) as info:
        load_settings(missing)
    assert "META_APP_SECRET is required but not set" in info.value.problems
    assert "API_TOKEN is required but not set" in info.value.problems
    assert SECRET not in str(info.value)


def test_unsigned_development_mode_is_explicit_and_logged(
    environ: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Without META_APP_SECRET the processor refuses to start, unless a development flag says
    so out loud; then unsigned bodies are accepted."""
    from processor.errors import SettingsError

    unsigned = {k: v for k, v in environ.items() if k != "META_APP_SECRET"}
    with pytest.raises(SettingsError):
        load_settings(unsigned)
    with caplog.at_level("WARNING"):
        settings = load_settings({**unsigned, "WA_BILLING_ALLOW_UNSIGNED": "1"})
    assert "signatures are NOT checked" in caplog.text
    ctx = build_context(settings)
    try:
        reply = (
            create_app(ctx=ctx)
            .test_client()
            .post("/webhook", data=GOOD, headers={"Content-Type": "application/json"})
        )
        assert reply.status_code == 200
        assert stored_bodies(ctx) == [GOOD]
    finally:
        keys = list(ctx.redis.scan_iter(f"{settings.redis_prefix}:*"))
        if keys:
            ctx.redis.delete(*keys)
