"""``budgets.csv`` in ``BILLING_CONFIG_DIR``: ``waba_id,monthly_budget,currency,thresholds``.

Optional. Read and checked like the other configuration files (:mod:`processor.config_files`):
every problem is collected with its ``file:line:column`` and reported at once. ``*`` as the
``waba_id`` is the budget of every WABA that has no row (or Redis override) of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from processor.config_files import Row, Table, read_table
from processor.core.budget import (
    Budget,
    parse_amount,
    parse_currency,
    parse_thresholds,
)
from processor.errors import SettingsError

BUDGETS = Table("budgets.csv", ("waba_id", "monthly_budget", "currency", "thresholds"), False)
T = TypeVar("T")
WABA_ID = re.compile(r"[0-9]{1,32}|\*")


def load_budgets(config_dir: Path) -> dict[str, Budget]:
    """waba_id (or ``*``) -> budget; raise :class:`SettingsError` listing every problem."""
    problems: list[str] = []
    budgets: dict[str, Budget] = {}
    first: dict[str, int] = {}
    for row in read_table(config_dir, BUDGETS, problems):
        budget = _budget(row, problems)
        if budget is None:
            continue
        if budget.waba_id in first:
            where = row.where("waba_id")
            problems.append(
                f"{where}: duplicate waba_id {budget.waba_id!r} (first on line "
                f"{first[budget.waba_id]})"
            )
            continue
        first[budget.waba_id] = row.line
        budgets[budget.waba_id] = budget
    if problems:
        raise SettingsError(problems)
    return budgets


def _budget(row: Row, problems: list[str]) -> Budget | None:
    before = len(problems)
    waba_id = row.cells["waba_id"]
    if not WABA_ID.fullmatch(waba_id):
        problems.append(f"{row.where('waba_id')}: waba_id {waba_id!r} is not a WABA id or '*'")
    amount = _cell(row, "monthly_budget", parse_amount, problems)
    currency = _cell(row, "currency", parse_currency, problems)
    thresholds = _cell(row, "thresholds", parse_thresholds, problems)
    if len(problems) > before or amount is None or currency is None or thresholds is None:
        return None
    return Budget(waba_id, amount, currency, thresholds)


def _cell(row: Row, column: str, parse: Callable[[str], T], problems: list[str]) -> T | None:
    try:
        return parse(row.cells[column])
    except ValueError as exc:
        problems.append(f"{row.where(column)}: {exc}")
        return None
