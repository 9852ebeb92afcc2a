"""Helpers for budget, alert, campaign and dashboard tests: a config dir of one's own, and
real traffic (signed webhooks, drained by the real drain job)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from processor.context import Context, build_context
from processor.settings import load_settings
from tests import payloads as p
from tests.conftest import _wipe, signed_headers
from workers.drain import drain, use_context

SHIPPED = Path(__file__).resolve().parent.parent / "config"
T0 = 1_763_798_400  # 2025-11-22T08:00Z, pmp-2025-07
MONTH = "2025-11"
MARKETING_BR = "0.0625"  # config/rates.csv, Brazil marketing from 2025-07-01


def config_dir(tmp: Path, **files: str) -> Path:
    """The shipped config/ plus (or with replaced) ``files`` (name without .csv -> text)."""
    target = tmp / "config"
    shutil.copytree(SHIPPED, target)
    for name, text in files.items():
        (target / f"{name}.csv").write_text(text, encoding="utf-8")
    return target


@contextmanager
def context_with(environ: dict[str, str], directory: Path, **extra: str) -> Iterator[Context]:
    settings = load_settings({**environ, "BILLING_CONFIG_DIR": str(directory), **extra})
    ctx = build_context(settings)
    try:
        yield ctx
    finally:
        _wipe(ctx.redis, settings)
        ctx.close()


def brazil_users(n: int, start: int = 0) -> list[str]:
    return [f"55119{start + i:08d}" for i in range(n)]


def post(client: Any, doc: dict[str, Any]) -> None:
    body = p.raw(doc)
    reply = client.post("/webhook", data=body, headers=signed_headers(body))
    assert reply.status_code == 200, reply.data


def deliver(
    client: Any,
    ctx: Context,
    users: list[str],
    t: int = T0,
    category: str = "marketing",
    phone: str = p.PHONE,
    waba: str = p.WABA,
    tag: str = "m",
    free_in_csw: frozenset[str] = frozenset(),
) -> None:
    """One delivered template per user at ``t`` (Meta's PMP pricing on it: ``regular``, or
    ``free_customer_service`` for the users in ``free_in_csw``), then a drain."""
    statuses = [
        p.status(f"wamid.{tag}{i}", "delivered", t + i, user=u, category=category,
                 pricing_type="free_customer_service" if u in free_in_csw else "regular")
        for i, u in enumerate(users)
    ]  # fmt: skip
    for k in range(0, len(statuses), 100):
        post(client, p.body(p.change(statuses=statuses[k : k + 100], phone=phone), waba=waba))
    use_context(ctx)
    drain()
