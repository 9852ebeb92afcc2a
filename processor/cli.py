"""``wa-billing``: run the processor, replay bodies, report and export."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from processor import rates_import
from processor.context import Context, build_context
from processor.errors import BillingError, SettingsError
from processor.settings import Settings, load_settings


def _settings(web: bool) -> Settings:
    try:
        return load_settings(os.environ, web=web)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _context(web: bool = False) -> Context:
    settings = _settings(web)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return build_context(settings)
    except BillingError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """wa-billing: what WhatsApp Business traffic costs, from Meta's webhooks."""


@main.command()
@click.option("--port", type=int, default=None, help="HTTP port (default: $PORT or 8000).")
@click.option("--workers", type=int, default=None, help="RQ workers (default: $WORKERS or 2).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
def up(port: int | None, workers: int | None, host: str) -> None:
    """Web endpoint + workers (+ the embedded Redis when REDIS_URL is unset)."""
    from processor.runner import run_all

    ctx = _context(web=True)
    run_all(ctx, port or ctx.settings.port, workers or ctx.settings.workers, host)


@main.command()
@click.option("--burst", is_flag=True, help="Process what is queued, then exit.")
@click.option("--name", default=None, help="Worker name (default: <host>-<pid>).")
def worker(burst: bool, name: str | None) -> None:
    """An RQ worker for the drain queue (start more to scale)."""
    from workers.runner import run_worker

    ctx = _context()
    run_worker(ctx, burst=burst, name=name)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--wait/--no-wait", default=True, help="Wait until workers processed them.")
def replay(paths: tuple[str, ...], wait: bool) -> None:
    """Queue webhook bodies again: JSON Lines of {"body": "<raw>"} or .json files."""
    from processor.replay import replay_files

    ctx = _context()
    replay_files(ctx, list(paths), wait=wait)


@main.command()
@click.option("--waba", "waba_id", required=True, help="WABA id.")
@click.option("--month", required=True, help="Billing month YYYY-MM.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
def report(waba_id: str, month: str, fmt: str) -> None:
    """Usage and cost of one WABA for one billing month."""
    from processor.reports import print_usage

    ctx = _context()
    usage = ctx.queries.usage(waba_id, _month(month), ctx.ratebook.waba(waba_id).currency)
    print_usage(usage, fmt, sys.stdout)


@main.command()
@click.option("--month", required=True, help="Billing month YYYY-MM.")
@click.option("--waba", "waba_id", default=None, help="Only this WABA (default: all).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--output", "-o", type=click.File("w"), default="-", help="File (default: stdout).")
def export(month: str, waba_id: str | None, fmt: str, output: Any) -> None:
    """Every record of a month (latest version of each), as JSON Lines or CSV."""
    from processor.reports import export_records, export_totals

    ctx = _context()
    count = export_records(ctx, _month(month), waba_id, fmt, output)
    click.echo(f"exported {count} records", err=True)
    for line in export_totals(ctx, _month(month), waba_id):  # per currency, never added up
        click.echo(line, err=True)


@main.command()
@click.option("--since", required=True, help="Received on or after (YYYY-MM-DD, UTC).")
@click.option("--until", default=None, help="Received before (YYYY-MM-DD, UTC).")
@click.option("--output", "-o", type=click.File("w"), default="-", help="File (default: stdout).")
def archive(since: str, until: str | None, output: Any) -> None:
    """Archived webhook bodies as JSON Lines that `wa-billing replay` takes."""
    from processor.replay import export_archive

    ctx = _context()
    count = export_archive(ctx, since, until, output)
    click.echo(f"exported {count} bodies", err=True)


@main.command()
@click.option("--month", required=True, help="Billing month YYYY-MM.")
@click.option("--waba", "waba_id", default=None, help="Only this WABA's portfolio.")
def rerate(month: str, waba_id: str | None) -> None:
    """Recompute the money of a month's records from the current rate files."""
    from processor.store.rerate import Rerater

    ctx = _context()
    rerater = Rerater(
        ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, ctx.settings.records_feed_maxlen
    )
    result = rerater.rerate(_month(month), waba_id)
    click.echo(f"re-rated {result.records} records of {month} ({result.changed} changed)")
    for waba in result.wabas:
        before = result.totals_before.get(waba, "0")
        after = result.totals_after.get(waba, "0")
        click.echo(f"  WABA {waba}: total cost {before} -> {after}")


@main.group()
def quarantine() -> None:
    """List quarantined bodies and events, or queue them again after a fix."""


@quarantine.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
def quarantine_list(limit: int) -> None:
    """The newest quarantined items with their reasons."""
    import json

    ctx = _context()
    listing = ctx.quarantine.list(limit)
    for item in listing["items"]:
        click.echo(json.dumps(item))
    click.echo(f"{listing['total']} items in quarantine", err=True)


@quarantine.command("replay")
@click.argument("item_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Replay every quarantined item.")
def quarantine_replay(item_ids: tuple[str, ...], everything: bool) -> None:
    """Queue the archived bodies of quarantined items again (after a fix)."""
    from processor.store.quarantine import all_ids
    from workers.failures import replay_items

    if not item_ids and not everything:
        raise click.UsageError("give item ids, or --all")
    ctx = _context()
    ids = all_ids(ctx.redis, ctx.keys) if everything else list(item_ids)
    done = replay_items(ctx, ids)  # also drops their failed jobs, queues a drain job
    click.echo(
        f"replayed {done.replayed_bodies} bodies for {len(done.removed)} items"
        f" ({done.missing_bodies} bodies no longer archived)",
        err=True,
    )


@main.command()
@click.option("--waba", "waba_id", required=True, help="WABA id.")
@click.option("--month", required=True, help="Billing month YYYY-MM (the WABA's time zone).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
def reconcile(waba_id: str, month: str, fmt: str) -> None:
    """Our figures beside Meta's pricing_analytics (exit 2 when Meta could not be asked)."""
    import re

    from processor.core.reconcile import MONTH_PATTERN
    from processor.graph import GraphError
    from processor.reconciling import print_result, run

    if not re.fullmatch(r"[0-9]{1,32}", waba_id):
        raise click.BadParameter("must be a WABA id (digits)", param_hint="--waba")
    if not re.fullmatch(MONTH_PATTERN, month):
        raise click.BadParameter("must be YYYY-MM (years 1970 to 9998)", param_hint="--month")
    ctx = _context()
    try:
        result = run(ctx, waba_id, month)
    except GraphError as exc:
        click.echo(f"Meta could not be asked: {exc.message}", err=True)
        click.echo(f"fbtrace_id: {exc.fbtrace_id or '-'}", err=True)
        sys.exit(2)
    print_result(result, fmt, sys.stdout)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts (default: a table).")
def status(as_json: bool) -> None:
    """Pipeline state: inbox lag, pending per worker, queue, failed, workers, last drain."""
    from workers.status import pipeline_state, print_state

    ctx = _context()
    print_state(pipeline_state(ctx), "json" if as_json else "table", sys.stdout)


def _month(value: str) -> str:
    import re

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise click.BadParameter("must be YYYY-MM", param_hint="--month")
    return value


from processor.sinks.cli import sink, sinks  # noqa: E402  (issue 14)

main.add_command(sink)
main.add_command(sinks)


def _add_commands() -> None:
    from processor.cli_money import quote

    main.add_command(quote)


_add_commands()

if __name__ == "__main__":
    main()


main.add_command(rates_import.rates)
