"""Operating the pipeline from RQ (issue 15): drain jobs tell what they did, the quarantine is
the failed registry and requeueing replays, the backlog and `wa-billing status` show the state.

Real Redis and real RQ workers (``SimpleWorker``, in this process); the dashboard's own
endpoints through the app.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from rq import Worker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from processor.cli import main
from processor.context import Context
from processor.core import parse
from processor.errors import SettingsError
from processor.settings import DAY, load_settings
from tests import payloads as p
from tests.conftest import auth
from tests.fault_helpers import wait_for
from tests.rq_helpers import drop_jobs
from workers import failures
from workers.janitor import Janitor
from workers.runner import run_worker

T0 = 1_751_400_000  # 2025-07-01T20:00Z
MONTH = "2025-07"
PRICED = {"category": "marketing", "pricing_type": "regular"}


@pytest.fixture(autouse=True)
def _drop_jobs(ctx: Context) -> Iterator[None]:
    yield
    drop_jobs(ctx)


def priced_body(n: int, statuses: int = 5) -> bytes:
    items = [
        p.status(
            f"wamid.b{n}.{i}", "delivered", T0 + n * 60 + i, user=f"55119{n:04d}{i:04d}", **PRICED
        )
        for i in range(statuses)
    ]
    return p.raw(p.body(p.change(statuses=items)))


def malformed_timestamp_body() -> bytes:
    bad = p.status("wamid.badtime", "delivered", T0, user="5511977776666", **PRICED)
    bad["timestamp"] = "2025-07-01T20:00:00Z"  # Meta sends Unix seconds
    return p.raw(p.body(p.change(statuses=[bad])))


def spaced_number_body() -> bytes:
    """A status our parser refuses (the "bug" fixed below): a number with spaces."""
    item = p.status("wamid.spaced", "delivered", T0 + 7, **PRICED)
    item["recipient_id"] = "5511 98888 7777"
    return p.raw(p.body(p.change(statuses=[item])))


def fix_the_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse, "_USER", re.compile(r"[0-9 ]{4,20}"))


def failed_jobs(ctx: Context) -> dict[str, Job]:
    ids = FailedJobRegistry(queue=ctx.queue).get_job_ids(cleanup=False)
    return {i: Job.fetch(i, connection=ctx.redis) for i in ids}


def finished_drains(ctx: Context) -> list[Job]:
    ids = FinishedJobRegistry(queue=ctx.queue).get_job_ids(cleanup=False)
    found = [Job.fetch(i, connection=ctx.redis) for i in ids]
    return [j for j in found if j.meta.get("kind") == "drain"]


def records(ctx: Context, wamid_prefix: str = "wamid.") -> dict[str, int]:
    counts: dict[str, int] = {}
    for raw in ctx.redis.hvals(ctx.keys.records(p.WABA, MONTH)):
        wamid = json.loads(raw)["wamid"]
        if wamid.startswith(wamid_prefix):
            counts[wamid] = counts.get(wamid, 0) + 1
    return counts


def work(ctx: Context) -> None:
    run_worker(ctx, burst=True)


# -- drain jobs tell what they did ----------------------------------------------------------


def test_drain_job_meta_and_description_tell_what_it_processed(
    environ: dict[str, str], ctx: Context
) -> None:
    for n in range(6):
        ctx.inbox.push(priced_body(n))
    ctx.inbox.push(priced_body(0))  # a redelivery: five duplicates
    work(ctx)
    drains = finished_drains(ctx)
    assert drains, "no finished drain job"
    total = {k: sum(j.meta[k] for j in drains) for k in ("bodies", "events", "applied")}
    assert total == {"bodies": 7, "events": 35, "applied": 30}
    assert sum(j.meta["duplicates"] for j in drains) == 5
    assert sum(j.meta["records"] for j in drains) == 30
    last = max(drains, key=lambda j: j.ended_at or j.created_at)
    assert {"unchanged", "quarantined", "conflicts", "lag", "pending", "seconds"} <= set(last.meta)
    assert last.meta["lag"] == 0 and last.meta["pending"] == 0
    busy = max(drains, key=lambda j: j.meta["bodies"])
    assert busy.description.startswith(f"drained {busy.meta['bodies']} bodies, ")
    assert f"({busy.meta['applied']} applied, {busy.meta['duplicates']} duplicate," in (
        busy.description
    )
    assert "inbox lag 0, pending 0" in busy.description


def test_finished_drain_jobs_are_kept_for_drain_result_ttl(
    environ: dict[str, str], ctx: Context
) -> None:
    assert load_settings(environ).drain_result_ttl_seconds == DAY  # the default: one day
    ctx.inbox.push(priced_body(1))
    work(ctx)
    [job] = finished_drains(ctx)
    assert DAY - 60 < ctx.redis.ttl(job.key) <= DAY


def test_drain_result_ttl_is_read_from_the_environment(environ: dict[str, str]) -> None:
    assert load_settings({**environ, "DRAIN_RESULT_TTL": "600"}).drain_result_ttl_seconds == 600
    for bad in ("0", "-5", "a day"):
        with pytest.raises(SettingsError, match="DRAIN_RESULT_TTL"):
            load_settings({**environ, "DRAIN_RESULT_TTL": bad})


# -- the backlog is visible -----------------------------------------------------------------


def test_queued_drain_job_says_how_many_bodies_wait(ctx: Context) -> None:
    ctx.inbox.ensure_group()
    for n in range(3):
        ctx.inbox.push(priced_body(n))
    ctx.enqueue_drain()
    [job_id] = ctx.queue.get_job_ids()
    assert Job.fetch(job_id, connection=ctx.redis).description == (
        "drain the webhook inbox: 3 bodies wait"
    )
    for n in range(3, 5):
        ctx.inbox.push(priced_body(n))
    Janitor(ctx).tick()  # while the job waits, the janitor keeps its count current
    assert Job.fetch(job_id, connection=ctx.redis).description == (
        "drain the webhook inbox: 5 bodies wait"
    )
    work(ctx)
    assert Job.fetch(job_id, connection=ctx.redis).description.startswith("drained 5 bodies")


def test_status_prints_the_pipeline_state(environ: dict[str, str], ctx: Context) -> None:
    for n in range(4):
        ctx.inbox.push(priced_body(n))
    ctx.inbox.push(malformed_timestamp_body())
    work(ctx)
    ctx.inbox.push(priced_body(9))  # waits: no worker runs now
    result = CliRunner().invoke(main, ["status", "--json"], env=environ)
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert state["inbox"]["lag"] == 1 and state["inbox"]["pending"] == 0
    assert state["queue"]["finished"] >= 1 and state["queue"]["failed"] == 1
    assert state["failed"] == {
        "jobs": 1,
        "quarantined_jobs": 1,
        "other_jobs": 0,
        "quarantine": 1,
    }
    assert state["last_drain"]["events"] >= 1 and state["last_drain"]["lag"] == 0
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    assert [c["consumer"] for c in state["pending_per_worker"]] == [consumer]
    assert state["workers"] == []  # the burst worker is gone

    table = CliRunner().invoke(main, ["status"], env=environ)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert any(re.match(r"inbox lag\s+1 bodies", line) for line in lines), table.stdout
    assert any(line.startswith("failed ") and "quarantine holds 1" in line for line in lines)
    assert any(line.startswith("last drain ") for line in lines)
    assert any(f"pending {consumer}" in line for line in lines)


def test_worker_names_carry_host_and_pid(ctx: Context) -> None:
    ctx.inbox.push(priced_body(1))
    work(ctx)
    [job] = finished_drains(ctx)
    assert job.worker_name == f"{socket.gethostname()}-{os.getpid()}"


def test_a_worker_process_is_named_by_host_and_pid_in_the_workers_view(
    environ: dict[str, str], client: Any, ctx: Context
) -> None:
    env = {**os.environ, **environ}
    proc = subprocess.Popen([sys.executable, "-m", "processor.cli", "worker"], env=env)
    try:
        name = f"{socket.gethostname()}-{proc.pid}"
        wait_for(lambda: name in {w.name for w in Worker.all(queue=ctx.queue)}, 60, "the worker")
        shown = client.get("/rq/0/data/workers.json", headers=auth()).json["workers"]
        assert [w["pid"] for w in shown if w["name"] == name] == [proc.pid]
        status = CliRunner().invoke(main, ["status", "--json"], env=environ)
        [worker] = json.loads(status.stdout)["workers"]
        assert (worker["name"], worker["pid"]) == (name, proc.pid)
        assert worker["host"] == socket.gethostname()
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


# -- failures are RQ failures ---------------------------------------------------------------


def test_every_quarantined_item_is_one_failed_job_with_its_reason(ctx: Context) -> None:
    ctx.inbox.push(priced_body(1))
    bad_time = ctx.inbox.push(malformed_timestamp_body())[0]
    two_bad = p.body(
        p.change(
            statuses=[
                {"id": "wamid.boom", "status": "exploded", "timestamp": str(T0)},
                p.status("wamid.ok", "delivered", T0 + 3, **PRICED),
                {"id": "wamid.boom2", "status": "delivered", "timestamp": "soon"},
            ]
        )
    )
    two_bad_id = ctx.inbox.push(p.raw(two_bad))[0]
    not_json = ctx.inbox.push(b"\x00not json{")[0]
    work(ctx)

    listing = ctx.quarantine.list()
    assert listing["total"] == 4
    jobs = failed_jobs(ctx)
    assert sorted(jobs) == sorted(failures.job_id(i["id"]) for i in listing["items"])
    for item in listing["items"]:
        job = jobs[failures.job_id(item["id"])]
        error = job.latest_result().exc_string
        assert error.startswith(item["reason"].split("'")[0]), error
        assert f"body {item['body_id']}" in error and f"body {item['body_id']}" in job.description
        assert job.meta["quarantine_id"] == item["id"]
        assert job.get_status() == JobStatus.FAILED
    by_body = {job.meta["body_id"] for job in jobs.values()}
    assert by_body == {bad_time, two_bad_id, not_json}
    [time_job] = [j for j in jobs.values() if j.meta["body_id"] == bad_time]
    assert "timestamp is not Unix seconds" in time_job.description


def test_failed_jobs_never_show_message_text_or_phone_numbers(ctx: Context) -> None:
    user = "5511977776666"
    item = p.status("wamid.x", "delivered", T0, user=user, **PRICED)
    item["timestamp"] = f"at {user} <b>hello secret text</b>"  # what a bad field may quote
    message = p.inbound("wamid.in", T0, user=user)
    message["text"] = {"body": "my card is 4111 1111"}
    message["timestamp"] = "yesterday"
    quoted = {"id": "wamid.q", "status": f"<b>{user}</b>", "timestamp": str(T0)}  # quoted back
    ctx.inbox.push(p.raw(p.body(p.change(messages=[message], statuses=[item, quoted]))))
    work(ctx)
    jobs = failed_jobs(ctx)
    assert len(jobs) == ctx.quarantine.list()["total"] >= 3
    assert any("unknown status" in (job.description or "") for job in jobs.values())
    for job in jobs.values():
        shown = " ".join(
            [job.description or "", job.latest_result().exc_string or "", json.dumps(job.meta)]
        )
        for private in (user, "7776666", "4111", "hello secret", "my card", "<b>"):
            assert private not in shown, (private, shown)


def test_requeue_from_the_dashboard_replays_the_body_and_bills_it_once(
    client: Any, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx.inbox.push(priced_body(1))
    ctx.inbox.push(spaced_number_body())
    work(ctx)
    [job_id] = failed_jobs(ctx)
    assert "recipient_id is not a phone number" in failed_jobs(ctx)[job_id].description

    # Not fixed yet: the replay fails again, and is back as a new failed job (new reason id).
    assert client.post(f"/rq/job/{job_id}/requeue", headers=auth()).json == {"status": "OK"}
    assert failed_jobs(ctx) == {} and ctx.queue.count == 1
    work(ctx)
    [again] = failed_jobs(ctx)
    assert again != job_id and ctx.quarantine.list()["total"] == 1
    assert "recipient_id is not a phone number" in failed_jobs(ctx)[again].description
    assert "wamid.spaced" not in records(ctx)

    fix_the_parser(monkeypatch)  # the fix is deployed
    assert client.post(f"/rq/job/{again}/requeue", headers=auth()).status_code == 200
    work(ctx)
    assert failed_jobs(ctx) == {} and ctx.quarantine.list()["total"] == 0
    assert records(ctx, "wamid.spaced") == {"wamid.spaced": 1}
    replayed = Job.fetch(again, connection=ctx.redis)
    assert replayed.get_status() == JobStatus.FINISHED
    assert replayed.description.startswith("replayed body ")
    # requeued once more (a second click): nothing to replay, nothing billed twice
    work(ctx)
    assert records(ctx, "wamid.spaced") == {"wamid.spaced": 1}


def test_requeueing_one_item_replays_its_body_once_for_all_its_items(
    client: Any, ctx: Context
) -> None:
    two_bad = p.body(
        p.change(
            statuses=[
                {"id": "wamid.boom", "status": "exploded", "timestamp": str(T0)},
                {"id": "wamid.boom2", "status": "delivered", "timestamp": "soon"},
            ]
        )
    )
    ctx.inbox.push(p.raw(two_bad))
    work(ctx)
    first, second = failed_jobs(ctx)
    client.post(f"/rq/job/{first}/requeue", headers=auth())
    client.post(f"/rq/job/{second}/requeue", headers=auth())  # already replayed with the first
    work(ctx)
    assert ctx.quarantine.list()["total"] == 2  # the body's two items, quarantined anew
    assert len(failed_jobs(ctx)) == 2 and not {first, second} & set(failed_jobs(ctx))


def test_cli_replay_removes_the_failed_jobs_too(
    environ: dict[str, str], ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx.inbox.push(spaced_number_body())
    work(ctx)
    assert len(failed_jobs(ctx)) == 1
    fix_the_parser(monkeypatch)
    result = CliRunner().invoke(main, ["quarantine", "replay", "--all"], env=environ)
    assert result.exit_code == 0, result.output
    assert failed_jobs(ctx) == {} and ctx.quarantine.list()["total"] == 0
    work(ctx)
    assert records(ctx, "wamid.spaced") == {"wamid.spaced": 1}
    assert failed_jobs(ctx) == {}


def test_a_body_no_longer_archived_fails_again_as_the_same_item(client: Any, ctx: Context) -> None:
    body_id = ctx.inbox.push(malformed_timestamp_body())[0]
    work(ctx)
    [job_id] = failed_jobs(ctx)
    ctx.redis.xdel(ctx.keys.inbox, body_id)  # trimmed past ARCHIVE_RETENTION_DAYS
    client.post(f"/rq/job/{job_id}/requeue", headers=auth())
    work(ctx)
    assert list(failed_jobs(ctx)) == [job_id]
    assert "no longer archived" in failed_jobs(ctx)[job_id].latest_result().exc_string
    assert ctx.quarantine.list()["total"] == 1


def test_reconcile_matches_the_failed_registry_to_the_quarantine_both_ways(
    ctx: Context,
) -> None:
    ids = ctx.quarantine.add_many(
        [{"reason": "body: not valid JSON", "body_id": "1-0"}, {"reason": "x", "body_id": "2-0"}]
    )
    assert failed_jobs(ctx) == {}  # as if a worker died between the two writes
    Janitor(ctx).tick()  # a worker's janitor matches them (at most once a minute)
    assert sorted(failed_jobs(ctx)) == sorted(failures.job_id(i) for i in ids)
    assert failures.reconcile_now_and_then(ctx) is None  # not again within the minute
    ctx.quarantine.remove(ids[0])  # trimmed past the quarantine's cap
    assert failures.reconcile(ctx) == {"added": 0, "removed": 1}
    assert list(failed_jobs(ctx)) == [failures.job_id(ids[1])]
    assert not ctx.redis.exists(Job.key_for(failures.job_id(ids[0])))
    assert failures.reconcile(ctx) == {"added": 0, "removed": 0}


# -- the dashboard's configuration and answers ----------------------------------------------


def test_deleting_jobs_is_disabled_in_the_dashboard(client: Any, ctx: Context) -> None:
    ctx.inbox.push(malformed_timestamp_body())
    work(ctx)
    [job_id] = failed_jobs(ctx)
    reply = client.post(f"/rq/job/{job_id}/delete", headers=auth())
    assert reply.json == {"status": "DISABLED"}
    empty = client.post(f"/rq/queue/{ctx.queue.name}/failed/empty", headers=auth())
    assert empty.json == {"status": "DISABLED"}
    assert list(failed_jobs(ctx)) == [job_id]


def test_dashboard_actions_are_refused_from_other_sites_and_by_get(
    client: Any, ctx: Context
) -> None:
    ctx.inbox.push(malformed_timestamp_body())
    work(ctx)
    [job_id] = failed_jobs(ctx)
    path = f"/rq/job/{job_id}/requeue"
    cross = {**auth(), "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
    assert client.post(path, headers=cross).status_code == 403
    other = {**auth(), "Origin": "https://evil.example"}
    assert client.post(path, headers=other).status_code == 403
    assert client.get(f"/rq/requeue/{ctx.queue.name}", headers=auth()).status_code == 405
    assert list(failed_jobs(ctx)) == [job_id]
    same = {**auth(), "Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}
    assert client.post(path, headers=same).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/rq/",
        "/rq/0/view/jobs",
        "/rq/0/data/queues.json",
        "/rq/static/js/jquery-3.5.1.min.js",
        "/rq/static/css/main.css",
        "/healthz",
        "/metrics",
        "/v1/quarantine",
        "/no/such/page",
    ],
)
def test_every_answer_carries_nosniff(client: Any, path: str) -> None:
    for headers in (auth(), {}):
        reply = client.get(path, headers=headers)
        reply.close()  # static files are streamed
        assert reply.headers.get("X-Content-Type-Options") == "nosniff", (path, reply.status)


def test_dashboard_pages_may_not_be_framed(client: Any) -> None:
    reply = client.get("/rq/", headers=auth())
    assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
    assert reply.headers["X-Frame-Options"] == "DENY"
