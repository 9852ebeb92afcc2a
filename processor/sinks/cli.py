"""``wa-billing sink`` and ``wa-billing sinks status|parked|replay``."""

from __future__ import annotations

import json
import logging
import signal
import threading

import click

from processor.settings import SINK_NAMES

log = logging.getLogger(__name__)


@click.command()
@click.option("--burst", is_flag=True, help="Deliver what is in the feed, then exit.")
@click.option("--only", multiple=True, type=click.Choice(SINK_NAMES), help="Only these sinks.")
def sink(burst: bool, only: tuple[str, ...]) -> None:
    """Deliver record versions to the sinks named in SINKS (start more to stand by)."""
    from processor.cli import _context
    from processor.sinks import build_sinks
    from processor.sinks.runner import run_sinks

    ctx = _context()
    names = tuple(n for n in ctx.settings.sinks if not only or n in only)
    if not names:
        click.echo("no sinks configured (set SINKS, e.g. SINKS=postgres)", err=True)
        if not burst:
            _idle()  # a Procfile line must not end (runners stop every process when one does)
        return
    ok = run_sinks(ctx, build_sinks(ctx, names), burst=burst)
    if burst and not ok:
        raise SystemExit(1)


def _idle() -> None:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


@click.group()
def sinks() -> None:
    """Sinks: their lag and counters; parked versions, listed and replayed."""


@sinks.command("status")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def status(as_json: bool) -> None:
    """Each configured sink's lag, pending, parked and delivered versions."""
    from processor.cli import _context
    from processor.sinks.status import status_of

    ctx = _context()
    found = status_of(ctx)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("no sinks configured (SINKS is unset)")
    for name, s in found.items():
        click.echo(
            f"{name:10} lag {s['lag']}  pending {s['pending']}  parked {s['parked']}"
            f"  queued for replay {s['replay_queued']}  delivered {s['delivered']}"
            f"  failed attempts {s['failed']}  holder {s['holder'] or '-'}"
            + (f"\n{'':10} last error: {s['last_error']}" if s["last_error"] else "")
            + (
                f"\n{'':10} MISSED {s['missed']} versions trimmed from the feed before delivery"
                " (RECORDS_FEED_MAXLEN too small for this outage)"
                if s["missed"]
                else ""
            )
        )


@sinks.command("parked")
@click.option("--sink", "name", type=click.Choice(SINK_NAMES), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
def parked_list(name: str | None, limit: int) -> None:
    """Versions a target rejected for good, newest first, as JSON lines with their reasons."""
    from processor.cli import _context
    from processor.store.sinkfeed import parked

    ctx = _context()
    total = 0
    for sink_name in [name] if name else list(ctx.settings.sinks):
        for item in parked(ctx.redis, ctx.keys, sink_name, limit):
            click.echo(json.dumps(item))
            total += 1
    click.echo(f"{total} parked versions listed", err=True)


@sinks.command("replay")
@click.argument("name", type=click.Choice(SINK_NAMES))
@click.argument("ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every parked version of the sink.")
def parked_replay(name: str, ids: tuple[str, ...], everything: bool) -> None:
    """Queue parked versions of a sink for delivery again (after fixing the cause)."""
    from processor.cli import _context
    from processor.store.sinkfeed import replay

    if not ids and not everything:
        raise click.UsageError("give parked ids, or --all")
    ctx = _context()
    count = replay(ctx.redis, ctx.keys, name, None if everything else list(ids))
    click.echo(f"queued {count} parked versions of {name} for delivery", err=True)
