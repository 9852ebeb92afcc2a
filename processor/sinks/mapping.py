"""``sinks.csv`` in ``BILLING_CONFIG_DIR``: which Lago subscription and Stripe customer each
WABA's costs are billed to. Optional; a WABA not listed (or with an empty cell) cannot be sent
to that target, and its records are parked with the reason until the file is fixed and the
parked versions are replayed. The file is read again when it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from processor.config_files import Table, read_table
from processor.errors import SettingsError

SINKS_CSV = Table(
    "sinks.csv", ("waba_id", "lago_external_subscription_id", "stripe_customer_id"), False
)


@dataclass(frozen=True)
class Accounts:
    lago: dict[str, str]
    stripe: dict[str, str]


def load_accounts(config_dir: Path) -> Accounts:
    problems: list[str] = []
    rows = read_table(config_dir, SINKS_CSV, problems)
    lago: dict[str, str] = {}
    stripe: dict[str, str] = {}
    for row in rows:
        waba = row.cells["waba_id"]
        if not waba:
            problems.append(f"{row.where('waba_id')}: waba_id is empty")
            continue
        if waba in lago or waba in stripe:
            problems.append(f"{row.where('waba_id')}: duplicate waba_id {waba!r}")
        if row.cells["lago_external_subscription_id"]:
            lago[waba] = row.cells["lago_external_subscription_id"]
        if row.cells["stripe_customer_id"]:
            stripe[waba] = row.cells["stripe_customer_id"]
    if problems:
        raise SettingsError(problems)
    return Accounts(lago, stripe)


class AccountBook:
    """``sinks.csv``, read again when its modification time changes."""

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / SINKS_CSV.name
        self.config_dir = config_dir
        self.stamp: float | None = None
        self.accounts = Accounts({}, {})

    def current(self) -> Accounts:
        stamp = self.path.stat().st_mtime if self.path.exists() else None
        if stamp != self.stamp:
            self.accounts = load_accounts(self.config_dir)
            self.stamp = stamp
        return self.accounts
