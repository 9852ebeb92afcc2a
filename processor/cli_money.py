"""``wa-billing quote --recipients FILE``: a campaign quote from the command line."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import IO

import click

from processor.store.campaign import MAX_RECIPIENTS, Campaign

_USER = re.compile(r"[0-9]{4,20}|[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")
_DIGITS = re.compile(r"[0-9]{1,32}")


def read_recipients(stream: IO[str]) -> list[str]:
    """One user id a line (blank lines and ``#`` comments skipped; a CSV's first column)."""
    users: list[str] = []
    first = True
    for n, line in enumerate(stream, 1):
        text = line.split(",", 1)[0].strip()
        if not text or text.startswith("#"):
            continue
        header, first = first and text.lower() in ("user_id", "wa_id"), False
        if header:
            continue
        if not _USER.fullmatch(text):
            raise click.BadParameter(
                f"line {n}: {text[:40]!r} is not a user id", param_hint="--recipients"
            )
        users.append(text)
    if not 1 <= len(users) <= MAX_RECIPIENTS:
        raise click.BadParameter(
            f"give 1 to {MAX_RECIPIENTS} recipients", param_hint="--recipients"
        )
    return users


def moment(raw: str | None) -> int:
    if raw is None:
        return int(time.time())
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("must be ISO 8601 with a zone", param_hint="--at") from None
    if at.tzinfo is None:
        raise click.BadParameter("needs a time zone (e.g. Z)", param_hint="--at")
    return int(at.timestamp())


@click.command()
@click.option(
    "--recipients",
    "recipients_file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    required=True,
    help="File of user ids, one a line ('-': stdin).",
)
@click.option("--phone-number-id", "phone", required=True, help="The sending business number.")
@click.option(
    "--category", required=True, help="Template category (or service with --no-template)."
)
@click.option("--template/--no-template", default=True, show_default=True)
@click.option("--at", "at_text", default=None, help="Send time, ISO 8601 (default: now).")
@click.option("--waba", "waba_id", default=None, help="WABA id (default: the number's).")
def quote(
    recipients_file: str,
    phone: str,
    category: str,
    template: bool,
    at_text: str | None,
    waba_id: str | None,
) -> None:
    """What sending one message to every recipient would cost (JSON); changes nothing."""
    from processor.cli import _context
    from processor.store.quoting import Quoter
    from processor.web.money_api import run_campaign_quote

    if not _DIGITS.fullmatch(phone):
        raise click.BadParameter("must be digits", param_hint="--phone-number-id")
    with click.open_file(recipients_file, encoding="utf-8") as stream:
        recipients = read_recipients(stream)
    at = moment(at_text)
    ctx = _context()
    if waba_id is None:
        waba_id = Quoter(ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, ctx.ledger.book).waba_of(
            phone
        )
        if waba_id is None:
            raise click.UsageError("unknown phone number id: give --waba too")
    elif not _DIGITS.fullmatch(waba_id):
        raise click.BadParameter("must be digits", param_hint="--waba")
    campaign = Campaign(waba_id, phone, category, template, at, tuple(recipients))
    try:
        out = run_campaign_quote(ctx, campaign)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(out, indent=2))
