"""Settings: one frozen object built from a mapping (``load_settings(os.environ)``).

Every problem is collected and reported at once, so that a start-up failure lists all that is
missing or malformed, not only the first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from processor.core.reconcile import Tolerance, parse_tolerance
from processor.errors import SettingsError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_DIR = PROJECT_ROOT / "config"
DAY = 86_400
T = TypeVar("T")
DEFAULT_TOLERANCE = Tolerance()


@dataclass(frozen=True)
class Settings:
    """Everything the processor reads from its environment."""

    meta_app_secret: str = field(repr=False)
    meta_verify_token: str = field(repr=False)
    api_token: str = field(repr=False)
    redis_url: str | None = None
    config_dir: Path = DEFAULT_CONFIG_DIR
    data_dir: Path = Path(".wa-billing")
    allow_unsigned: bool = False
    redis_prefix: str = "wab"
    queue_name: str = "wa-billing"
    max_body_bytes: int = 4 * 1024 * 1024
    max_json_depth: int = 64
    dedup_ttl_seconds: int = 8 * DAY
    archive_retention_seconds: int = 8 * DAY
    pair_horizon_seconds: int = 10 * DAY
    records_retention_seconds: int = 400 * DAY
    records_feed_maxlen: int = 1_000_000
    drain_batch_bodies: int = 200
    drain_max_seconds: float = 10.0
    claim_idle_seconds: float = 60.0
    drain_idle_seconds: float = 1.0
    drain_gather_seconds: float = 0.02
    inbox_shards: int = 1
    max_deliveries: int = 5
    janitor_interval_seconds: float = 5.0
    redis_timeout_seconds: float = 2.0
    port: int = 8000
    workers: int = 2
    log_level: str = "INFO"
    # -- sinks (issue 14): where records flow out; see processor/sinks/ -------------------------
    sinks: tuple[str, ...] = ()
    postgres_url: str | None = field(default=None, repr=False)
    sink_webhook_url: str | None = None
    sink_webhook_secret: str = field(default="", repr=False)
    openmeter_url: str | None = None
    openmeter_api_key: str = field(default="", repr=False)
    openmeter_event_type: str = "whatsapp_cost"
    lago_api_url: str | None = None
    lago_api_key: str = field(default="", repr=False)
    lago_metric_code: str = "whatsapp_cost"
    stripe_api_key: str = field(default="", repr=False)
    stripe_api_base: str = "https://api.stripe.com"
    stripe_meter_event_name: str = "whatsapp_cost"
    stripe_max_requests_per_second: float = 25.0
    sink_batch_size: int = 100
    sink_http_timeout_seconds: float = 10.0
    sink_max_backoff_seconds: float = 300.0
    sink_lease_seconds: float = 15.0
    meta_graph_url: str = "https://graph.facebook.com"
    meta_graph_version: str = "v25.0"
    meta_access_token: str = field(default="", repr=False)
    reconcile_tolerance: Tolerance = DEFAULT_TOLERANCE
    reconcile_every_hours: float = 0.0  # 0: periodic reconciliation is off
    meta_access_tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # per WABA
    drain_result_ttl_seconds: int = DAY
    alert_webhook_url: str | None = field(default=None, repr=False)
    alert_webhook_secret: str = field(default="", repr=False)
    alert_max_attempts: int = 8
    alert_retry_seconds: float = 2.0
    alert_timeout_seconds: float = 5.0
    ledger_redis_url: str | None = None  # LEDGER_REDIS_URL (default: REDIS_URL)
    ledger_redis_cluster: bool = False  # LEDGER_REDIS_CLUSTER: the ledger URL names a cluster
    ledger_wait_replicas: int = 0  # LEDGER_WAIT_REPLICAS (default 1 on a cluster)

    @property
    def signature_required(self) -> bool:
        return not self.allow_unsigned


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class _Reader:
    """Reads typed values from the mapping, collecting problems instead of raising."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            if required:
                self.problems.append(f"{name} is required but not set")
            return default
        return value.strip()

    def typed(self, name: str, default: T, parse: Callable[[str], T], what: str) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not {what}")
            return default

    def flag(self, name: str) -> bool:
        raw = (self.text(name) or "").lower()
        if raw in _TRUE:
            return True
        if raw not in _FALSE:
            self.problems.append(f"{name}={raw!r} is not a boolean (1/0, true/false)")
        return False


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError(raw)
    return value


def _non_negative(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError(raw)
    return value


def _days(raw: str) -> int:
    return int(_positive_float(raw) * DAY)


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(raw)
    return raw


def _ledger_settings(r: _Reader) -> tuple[str | None, bool, int]:
    """Where the billing state lives: LEDGER_REDIS_URL (default REDIS_URL), a cluster or not."""
    url = r.typed("LEDGER_REDIS_URL", None, _redis_url, "a redis://, rediss:// or unix:// URL")
    cluster = r.flag("LEDGER_REDIS_CLUSTER")
    if cluster and not (url or r.text("REDIS_URL")):
        r.problems.append(
            "LEDGER_REDIS_CLUSTER=true needs LEDGER_REDIS_URL (a node of the cluster)"
        )
    waits = r.typed("LEDGER_WAIT_REPLICAS", 1 if cluster else 0, _count, "a replica count")
    return url, cluster, waits


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(raw)
    return value


def _graph_version(raw: str) -> str:
    if not re.fullmatch(r"v[0-9]{1,3}\.[0-9]{1,3}", raw):
        raise ValueError(raw)
    return raw


def _token_file(path: str | None, problems: list[str]) -> tuple[tuple[str, str], ...]:
    """``waba_id,token`` lines (``#`` comments); problems name the line, never the token."""
    if path is None:
        return ()
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(
            f"META_ACCESS_TOKENS_FILE={path!r} cannot be read ({exc.__class__.__name__})"
        )
        return ()
    tokens = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        waba, _, token = (part.strip() for part in text.partition(","))
        if not re.fullmatch(r"[0-9]{1,32}", waba) or not re.fullmatch(r"[!-~]{8,4096}", token):
            problems.append(f"META_ACCESS_TOKENS_FILE line {number}: expected 'waba_id,token'")
            continue
        tokens.append((waba, token))
    return tuple(tokens)


def load_settings(environ: Mapping[str, str], *, web: bool = True) -> Settings:
    """Build the settings from ``environ``; raise :class:`SettingsError` listing every problem.

    ``web=False`` (workers, command-line tools) does not require the webhook and API secrets.
    """
    r = _Reader(environ)
    allow_unsigned = r.flag("WA_BILLING_ALLOW_UNSIGNED")
    secret = r.text("META_APP_SECRET", required=web and not allow_unsigned) or ""
    verify_token = r.text("META_VERIFY_TOKEN", required=web) or ""
    api_token = r.text("API_TOKEN", required=web) or ""
    if api_token and len(api_token) < 8:
        r.problems.append("API_TOKEN must be at least 8 characters")
    config_dir = Path(r.text("BILLING_CONFIG_DIR") or DEFAULT_CONFIG_DIR)
    if not config_dir.is_dir():
        r.problems.append(f"BILLING_CONFIG_DIR={str(config_dir)!r} is not a directory")
    settings = Settings(
        meta_app_secret=secret,
        meta_verify_token=verify_token,
        api_token=api_token,
        redis_url=r.typed("REDIS_URL", None, _redis_url, "a redis://, rediss:// or unix:// URL"),
        config_dir=config_dir,
        data_dir=Path(r.text("WA_BILLING_DATA_DIR") or ".wa-billing"),
        allow_unsigned=allow_unsigned,
        redis_prefix=r.text("REDIS_PREFIX") or "wab",
        queue_name=r.text("QUEUE_NAME") or "wa-billing",
        max_body_bytes=r.typed("MAX_BODY_BYTES", 4 * 1024 * 1024, _positive_int, "a byte count"),
        dedup_ttl_seconds=r.typed("DEDUP_TTL_DAYS", 8 * DAY, _days, "a number of days"),
        archive_retention_seconds=r.typed(
            "ARCHIVE_RETENTION_DAYS", 8 * DAY, _days, "a number of days"
        ),
        pair_horizon_seconds=r.typed("PAIR_HORIZON_DAYS", 10 * DAY, _days, "a number of days"),
        records_retention_seconds=r.typed(
            "RECORDS_RETENTION_DAYS", 400 * DAY, _days, "a number of days"
        ),
        records_feed_maxlen=r.typed(
            "RECORDS_FEED_MAXLEN", 1_000_000, _positive_int, "a positive integer"
        ),
        drain_batch_bodies=r.typed("DRAIN_BATCH_BODIES", 200, _positive_int, "a positive integer"),
        drain_max_seconds=r.typed("DRAIN_MAX_SECONDS", 10.0, _positive_float, "seconds"),
        claim_idle_seconds=r.typed("CLAIM_IDLE_SECONDS", 60.0, _positive_float, "seconds"),
        drain_idle_seconds=r.typed("DRAIN_IDLE_SECONDS", 1.0, _positive_float, "seconds"),
        drain_gather_seconds=r.typed("DRAIN_GATHER_SECONDS", 0.02, _non_negative, "seconds"),
        inbox_shards=r.typed("INBOX_SHARDS", 1, _positive_int, "a positive integer"),
        max_deliveries=r.typed("MAX_DELIVERIES", 5, _positive_int, "a positive integer"),
        janitor_interval_seconds=r.typed("JANITOR_INTERVAL_SECONDS", 5.0, _positive_float, "s"),
        redis_timeout_seconds=r.typed("REDIS_TIMEOUT_SECONDS", 2.0, _positive_float, "seconds"),
        port=r.typed("PORT", 8000, _positive_int, "a port number"),
        workers=r.typed("WORKERS", 2, _positive_int, "a positive integer"),
        log_level=(r.text("LOG_LEVEL") or "INFO").upper(),
        **_sink_settings(r),
        meta_graph_url=r.typed(
            "META_GRAPH_URL", "https://graph.facebook.com", _http_url, "an http(s) URL"
        ),
        meta_graph_version=r.typed(
            "META_GRAPH_VERSION", "v25.0", _graph_version, "a version like v25.0"
        ),
        meta_access_token=r.text("META_ACCESS_TOKEN") or "",
        reconcile_tolerance=r.typed(
            "RECONCILE_TOLERANCE", DEFAULT_TOLERANCE, parse_tolerance, "an amount and/or a %"
        ),
        reconcile_every_hours=r.typed("RECONCILE_EVERY_HOURS", 0.0, _non_negative, "hours"),
        meta_access_tokens=_token_file(r.text("META_ACCESS_TOKENS_FILE"), r.problems),
        drain_result_ttl_seconds=r.typed("DRAIN_RESULT_TTL", DAY, _positive_int, "seconds"),
        alert_webhook_url=r.typed("ALERT_WEBHOOK_URL", None, _http_url, "an http(s):// URL"),
        alert_webhook_secret=r.text("ALERT_WEBHOOK_SECRET") or "",
        alert_max_attempts=r.typed("ALERT_MAX_ATTEMPTS", 8, _positive_int, "a positive integer"),
        alert_retry_seconds=r.typed("ALERT_RETRY_SECONDS", 2.0, _positive_float, "seconds"),
        alert_timeout_seconds=r.typed("ALERT_TIMEOUT_SECONDS", 5.0, _positive_float, "seconds"),
    )
    ledger_url, ledger_cluster, ledger_waits = _ledger_settings(r)
    settings = replace(
        settings,
        ledger_redis_url=ledger_url,
        ledger_redis_cluster=ledger_cluster,
        ledger_wait_replicas=ledger_waits,
    )
    if settings.alert_webhook_url and not settings.alert_webhook_secret:
        r.problems.append("ALERT_WEBHOOK_SECRET is required when ALERT_WEBHOOK_URL is set")
    if settings.dedup_ttl_seconds < 7 * DAY:
        r.problems.append("DEDUP_TTL_DAYS must be at least 7 (Meta retries for up to 7 days)")
    if settings.pair_horizon_seconds < settings.dedup_ttl_seconds:
        r.problems.append("PAIR_HORIZON_DAYS must not be shorter than DEDUP_TTL_DAYS")
    _check_sinks(settings, r.problems)
    if r.problems:
        raise SettingsError(r.problems)
    if allow_unsigned:
        log.warning(
            "WA_BILLING_ALLOW_UNSIGNED is set: webhook signatures are NOT checked. "
            "Never run like this on a public URL."
        )
    return settings


# -- sinks (issue 14) ---------------------------------------------------------------------------

SINK_NAMES = ("postgres", "webhook", "openmeter", "lago", "stripe")
_NO_SINKS: tuple[str, ...] = ()


def _http_url(raw: str) -> str:
    """An http(s) URL with a host and no credentials (keys go in their own variables)."""
    if not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+(/[^\s@]*)?", raw):
        raise ValueError(raw)
    return raw.rstrip("/")


def _postgres_url(raw: str) -> str:
    if not raw.startswith(("postgresql://", "postgres://")):
        raise ValueError(raw)
    return raw


def _sink_names(raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in raw.split(",") if n.strip()))
    if any(n not in SINK_NAMES for n in names):
        raise ValueError(raw)
    return names


def _sink_settings(r: _Reader) -> dict[str, Any]:
    url = "an http:// or https:// URL (without user:password@)"
    return {
        "sinks": r.typed(
            "SINKS", _NO_SINKS, _sink_names, "a comma list of " + ", ".join(SINK_NAMES)
        ),
        "postgres_url": r.typed("POSTGRES_URL", None, _postgres_url, "a postgresql:// URL"),
        "sink_webhook_url": r.typed("SINK_WEBHOOK_URL", None, _http_url, url),
        "sink_webhook_secret": r.text("SINK_WEBHOOK_SECRET") or "",
        "openmeter_url": r.typed("OPENMETER_URL", None, _http_url, url),
        "openmeter_api_key": r.text("OPENMETER_API_KEY") or "",
        "openmeter_event_type": r.text("OPENMETER_EVENT_TYPE") or "whatsapp_cost",
        "lago_api_url": r.typed("LAGO_API_URL", None, _http_url, url),
        "lago_api_key": r.text("LAGO_API_KEY") or "",
        "lago_metric_code": r.text("LAGO_METRIC_CODE") or "whatsapp_cost",
        "stripe_api_key": r.text("STRIPE_API_KEY") or "",
        "stripe_api_base": r.typed("STRIPE_API_BASE", "https://api.stripe.com", _http_url, url),
        "stripe_meter_event_name": r.text("STRIPE_METER_EVENT_NAME") or "whatsapp_cost",
        "stripe_max_requests_per_second": r.typed(
            "STRIPE_MAX_REQUESTS_PER_SECOND", 25.0, _positive_float, "requests per second"
        ),
        "sink_batch_size": r.typed("SINK_BATCH_SIZE", 100, _positive_int, "a positive integer"),
        "sink_http_timeout_seconds": r.typed(
            "SINK_HTTP_TIMEOUT_SECONDS", 10.0, _positive_float, "seconds"
        ),
        "sink_max_backoff_seconds": r.typed(
            "SINK_MAX_BACKOFF_SECONDS", 300.0, _positive_float, "seconds"
        ),
        "sink_lease_seconds": r.typed("SINK_LEASE_SECONDS", 15.0, _positive_float, "seconds"),
    }


_SINK_NEEDS = {
    "postgres": (("postgres_url", "POSTGRES_URL"),),
    "webhook": (("sink_webhook_url", "SINK_WEBHOOK_URL"),
                ("sink_webhook_secret", "SINK_WEBHOOK_SECRET")),
    "openmeter": (("openmeter_url", "OPENMETER_URL"),),
    "lago": (("lago_api_url", "LAGO_API_URL"), ("lago_api_key", "LAGO_API_KEY")),
    "stripe": (("stripe_api_key", "STRIPE_API_KEY"),),
}  # fmt: skip


def _check_sinks(settings: Settings, problems: list[str]) -> None:
    for name in settings.sinks:
        for attr, variable in _SINK_NEEDS[name]:
            if not getattr(settings, attr):
                problems.append(f"{variable} is required when SINKS names {name}")
