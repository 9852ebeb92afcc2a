"""Replay webhook bodies through the same inbox, queue and workers; export the archive."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import click
from rq import Worker
from tqdm import tqdm

from processor.context import Context
from processor.store.inbox import BODY

PUSH_BATCH = 200


def iter_bodies(path: Path) -> Iterator[bytes]:
    """The bodies in ``path``: a ``.json`` file is one body; otherwise JSON Lines."""
    if path.suffix == ".json":
        yield path.read_bytes()
        return
    with path.open("rb") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                body = json.loads(line)["body"]
            except (ValueError, KeyError, TypeError):
                raise click.ClickException(
                    f'{path}:{lineno}: not a JSON object with a "body" string'
                ) from None
            if not isinstance(body, str):
                raise click.ClickException(f'{path}:{lineno}: "body" is not a string')
            yield body.encode("utf-8")


def push_all(ctx: Context, paths: list[Path]) -> int:
    """Put every body in the inbox, with a progress bar; return how many."""
    total_bytes = sum(p.stat().st_size for p in paths)
    pushed = 0
    with tqdm(total=total_bytes, unit="B", unit_scale=True, desc="queueing", leave=True) as bar:
        for path in paths:
            pipe = ctx.redis.pipeline(transaction=False)
            for body in iter_bodies(path):
                pipe.xadd(ctx.inbox.stream(ctx.inbox.route(body)), {BODY: body})
                pushed += 1
                if len(pipe) >= PUSH_BATCH:
                    pipe.execute()
                    bar.update(0)
            pipe.execute()
            bar.update(path.stat().st_size)
    return pushed


def replay_files(ctx: Context, paths: list[str], *, wait: bool) -> None:
    from workers.runner import kick, run_worker

    ctx.inbox.ensure_group()
    pushed = push_all(ctx, [Path(p) for p in paths])
    click.echo(f"queued {pushed} bodies", err=True)
    kick(ctx)
    if not wait:
        return
    done = threading.Event()
    follower = threading.Thread(target=_follow, args=(ctx, pushed, done), daemon=True)
    follower.start()
    if Worker.count(queue=ctx.queue) == 0:
        click.echo("no worker is running: processing here", err=True)
        run_worker(ctx, burst=True)
    else:
        while sum(ctx.inbox.backlog().values()):
            time.sleep(0.5)
    done.set()
    follower.join()


def _follow(ctx: Context, pushed: int, done: threading.Event) -> None:
    with tqdm(total=pushed, unit="body", desc="processing") as bar:
        while True:
            remaining = min(pushed, sum(ctx.inbox.backlog().values()))
            bar.n = pushed - remaining
            bar.refresh()
            if done.is_set() or remaining == 0:
                bar.n = pushed - min(pushed, sum(ctx.inbox.backlog().values()))
                bar.refresh()
                return
            time.sleep(0.5)


def export_archive(ctx: Context, since: str, until: str | None, out: IO[str]) -> int:
    start = _ms(since)
    end = str(_ms(until) - 1) if until else "+"
    count = 0
    for entry in ctx.inbox.entries(str(start), end):
        received = datetime.fromtimestamp(entry.received_ms / 1000, UTC).isoformat()
        body = entry.body.decode("utf-8")
        out.write(json.dumps({"body": body, "received_at": received}) + "\n")
        count += 1
    return count


def _ms(day: str) -> int:
    try:
        moment = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise click.BadParameter(f"{day!r} is not YYYY-MM-DD") from None
    return int(moment.timestamp() * 1000)
