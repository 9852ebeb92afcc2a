"""The feed as sinks read it: order, one holder per sink, takeover after a crash, parking of
what cannot be delivered; settings and the command line without SINKS."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.context import Context
from processor.errors import SettingsError
from processor.settings import load_settings
from processor.sinks.base import Outcome, Sink, Transient, Version
from processor.sinks.runner import Runner
from processor.store.sinkfeed import SinkFeed, parked
from tests.sink_helpers import push, record


class Recorder(Sink):
    """A target that keeps what it got, in order; it fails on request."""

    name = "webhook"
    max_batch = 3

    def __init__(self, fail: str | None = None) -> None:
        self.got: list[str] = []
        self.fail = fail

    def deliver(self, versions: Sequence[Version]) -> Outcome:
        if self.fail == "transient":
            raise Transient("HTTP 503")
        for v in versions:
            if v.record.get("category") == "boom":
                raise KeyError("boom")
        self.got += [v.key for v in versions]
        return Outcome()


def test_versions_arrive_in_feed_order(ctx: Context) -> None:
    push(ctx, *[record(f"r{i % 3}", i // 3 + 1) for i in range(10)])
    sink = Recorder()
    assert Runner(ctx, [sink], "a").run(burst=True)
    assert sink.got == [f"r{i % 3}:{i // 3 + 1}" for i in range(10)]


def test_only_the_lease_holder_delivers_and_a_standby_takes_over_what_it_left(
    ctx: Context,
) -> None:
    push(ctx, *[record(f"r{i}", 1) for i in range(5)])
    dead = SinkFeed(ctx.redis, ctx.keys, "webhook", "dead")
    dead.ensure_group()
    assert dead.acquire(30)
    taken = dead.read(2)  # read, never acknowledged: the process died mid-batch
    assert [e.entry_id for e in taken]
    standby, sink = Runner(ctx, [Recorder()], "standby"), None
    assert not standby.run(burst=True)  # the lease is held: nothing delivered
    ctx.redis.delete(ctx.keys.sink_lease("webhook"))  # the lease lapses
    sink = Recorder()
    assert Runner(ctx, [sink], "standby").run(burst=True)
    assert sink.got == [f"r{i}:1" for i in range(5)]  # the dead one's first, in order
    consumers = ctx.redis.xinfo_consumers(ctx.keys.feed, "sink:webhook")
    assert [c["name"] for c in consumers] == [b"standby"]


def test_a_malformed_entry_and_a_version_the_sink_cannot_handle_are_parked(ctx: Context) -> None:
    ctx.redis.xadd(ctx.keys.feed, {"r": "{not json"})
    push(ctx, record("ok1", 1), record("bad", 1, category="boom"), record("ok2", 1))
    sink = Recorder()
    assert Runner(ctx, [sink], "a").run(burst=True)
    assert sink.got == ["ok1:1", "ok2:1"]
    reasons = sorted(p["reason"].split(":")[0] for p in parked(ctx.redis, ctx.keys, "webhook", 9))
    assert reasons == ["error", "not a record"]


def test_a_failing_target_is_backed_off_and_keeps_its_place(ctx: Context) -> None:
    push(ctx, record("r1", 1))
    runner = Runner(ctx, [Recorder(fail="transient")], "a")
    assert not runner.run(burst=True)
    state = ctx.redis.hgetall(ctx.keys.sink_state("webhook"))
    assert state[b"last_error"] == b"HTTP 503"
    sink = Recorder()
    assert Runner(ctx, [sink], "a").run(burst=True)
    assert sink.got == ["r1:1"]


def test_sinks_unset_changes_nothing(environ: dict[str, str]) -> None:
    settings = load_settings(environ)
    assert settings.sinks == () and settings.postgres_url is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"SINKS": "postgres"}, "POSTGRES_URL is required when SINKS names postgres"),
        ({"SINKS": "webhook", "SINK_WEBHOOK_URL": "https://x.example"}, "SINK_WEBHOOK_SECRET"),
        ({"SINKS": "kafka"}, "SINKS='kafka' is not a comma list"),
        ({"SINKS": "lago", "LAGO_API_URL": "https://u:p@lago.example", "LAGO_API_KEY": "k"},
         "LAGO_API_URL"),
        ({"SINKS": "stripe"}, "STRIPE_API_KEY is required"),
        ({"POSTGRES_URL": "mysql://x"}, "POSTGRES_URL"),
    ],
)  # fmt: skip
def test_sink_settings_are_checked(
    environ: dict[str, str], extra: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({**environ, **extra})
    assert message in str(caught.value)


def test_sink_secrets_stay_out_of_the_settings_repr(environ: dict[str, str]) -> None:
    settings = load_settings({
        **environ, "SINKS": "postgres,lago,stripe,webhook",
        "POSTGRES_URL": "postgresql://u:pgsecret@db/x", "LAGO_API_URL": "https://lago.example",
        "LAGO_API_KEY": "lagosecret", "STRIPE_API_KEY": "sk_live_secret",
        "SINK_WEBHOOK_URL": "https://h.example", "SINK_WEBHOOK_SECRET": "hooksecret",
    })  # fmt: skip
    text = repr(settings)
    assert settings.sinks == ("postgres", "lago", "stripe", "webhook")
    for secret in ("pgsecret", "lagosecret", "sk_live_secret", "hooksecret"):
        assert secret not in text


def test_the_sink_command_without_sinks_says_so(environ: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["sink", "--burst"], env=environ)
    assert result.exit_code == 0 and "no sinks configured" in result.output
    status = CliRunner().invoke(main, ["sinks", "status"], env=environ)
    assert status.exit_code == 0 and "no sinks configured" in status.output


def test_replay_needs_ids_or_all(environ: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["sinks", "replay", "lago"], env=environ)
    assert result.exit_code == 2 and "--all" in result.output


def test_versions_trimmed_from_the_feed_before_delivery_are_reported_as_missed(
    ctx: Context,
) -> None:
    from processor.sinks.status import sink_status

    SinkFeed(ctx.redis, ctx.keys, "webhook", "a").ensure_group()
    push(ctx, *[record(f"r{i}", 1) for i in range(10)])
    assert sink_status(ctx.redis, ctx.keys, ("webhook",))["webhook"]["missed"] == 0
    ctx.redis.xtrim(
        ctx.keys.feed, maxlen=4, approximate=False
    )  # the sink was away longer than the feed holds
    status = sink_status(ctx.redis, ctx.keys, ("webhook",))["webhook"]
    assert (status["missed"], status["lag"]) == (6, 4)
    sink = Recorder()
    assert Runner(ctx, [sink], "a").run(burst=True)
    assert sink.got == [f"r{i}:1" for i in range(6, 10)]
