"""Reading records back from PostgreSQL: months Redis no longer holds, and usage by SQL.

``/v1/records`` and ``wa-billing export`` read a WABA-month from PostgreSQL when
``POSTGRES_URL`` is set and Redis holds no records for it (its retention ran out). ``USAGE_SQL``
is the documented query for a month's usage per WABA; ``usage`` shapes its rows exactly as
``/v1/usage`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg

from processor.sinks.pgschema import RECORDS, columns, from_row
from processor.store.ops import money

USAGE_SQL = """
SELECT category, market, billable, free_reason, currency,
       count(*)                                                        AS count,
       coalesce(sum(cost) FILTER (WHERE billable), 0)                  AS cost,
       coalesce(sum(coalesce(billed_cost, cost)) FILTER (WHERE billable), 0) AS billed_cost,
       count(*) FILTER (WHERE billable AND cost IS NULL)               AS unrated
FROM billing_records
WHERE waba_id = %(waba_id)s AND billing_month = %(month)s AND NOT void
GROUP BY category, market, billable, free_reason, currency
ORDER BY category, market, billable DESC
"""

_SELECT = (
    "SELECT {cols}, extra FROM " + RECORDS + " WHERE waba_id = %s AND billing_month = %s"
    " ORDER BY charge_time, record_id"
)


class Archive:
    """Short-lived connections: reads of old months are rare and must not pin connections."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url, self.timeout = url, timeout

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=int(self.timeout))

    def _select(self, tail: str = "") -> str:
        cols = ", ".join(f'"{c}"' for c in columns())
        return _SELECT.format(cols=cols) + tail

    def records_page(
        self, waba_id: str, month: str, cursor: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the month's records; the cursor is an offset (0 ends the listing)."""
        with self._connect() as conn:
            cur = conn.execute(
                self._select(" LIMIT %s OFFSET %s"), (waba_id, month, limit + 1, cursor)
            )
            names = [d.name for d in cur.description or []]
            rows = cur.fetchall()
        records = [from_row(names, row) for row in rows[:limit]]
        return records, (cursor + limit if len(rows) > limit else 0)

    def records(self, waba_id: str, month: str) -> Iterator[dict[str, Any]]:
        with (
            self._connect() as conn,
            conn.transaction(),
            conn.cursor(name="wa_billing_export") as cur,
        ):
            cur.itersize = 1000
            cur.execute(self._select(), (waba_id, month))
            names: list[str] = []
            for row in cur:
                names = names or [d.name for d in cur.description or []]
                yield from_row(names, row)

    def record_count(self, waba_id: str, month: str) -> int:
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT count(*) FROM {RECORDS} WHERE waba_id = %s AND billing_month = %s",
                (waba_id, month),
            ).fetchone()
        return int(row[0]) if row else 0

    def months(self, waba_id: str | None, month: str | None) -> list[tuple[str, str]]:
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT DISTINCT waba_id, billing_month FROM {RECORDS}"
                " WHERE (%(w)s::text IS NULL OR waba_id = %(w)s)"
                " AND (%(m)s::text IS NULL OR billing_month = %(m)s)",
                {"w": waba_id, "m": month},
            ).fetchall()
        return sorted((str(w), str(m)) for w, m in rows)

    def usage(self, waba_id: str, month: str, currency: str) -> dict[str, Any]:
        """``/v1/usage`` for a month, from ``USAGE_SQL``."""
        with self._connect() as conn:
            rows = conn.execute(USAGE_SQL, {"waba_id": waba_id, "month": month}).fetchall()
        return shape_usage(waba_id, month, currency, rows)


def shape_usage(waba_id: str, month: str, currency: str, rows: list[Any]) -> dict[str, Any]:
    lines = []
    currencies = set()
    total, billed, units, unrated = Decimal(0), Decimal(0), 0, 0
    for category, market, billable, free_reason, cur, count, cost, billed_cost, n in rows:
        currencies.add(cur)
        total, billed = total + cost, billed + billed_cost
        units, unrated = units + count, unrated + n
        lines.append(
            {"category": category, "market": market, "billable": billable,
             "free_reason": free_reason, "currency": cur, "count": count,
             "cost": money(cost), "billed_cost": money(billed_cost)}
        )  # fmt: skip
    return {
        "waba_id": waba_id,
        "month": month,
        "currency": currency if len(currencies) <= 1 else "mixed",
        "total_cost": money(total),
        "total_billed_cost": money(billed),
        "units": units,
        "unrated_units": unrated,
        "lines": lines,
    }


def from_redis_or_postgres(ctx: Any, waba_id: str, month: str) -> Archive | None:
    """The archive to read ``waba_id``/``month`` from, when Redis no longer holds it."""
    url = ctx.settings.postgres_url
    if url and ctx.queries.record_count(waba_id, month) == 0:
        return Archive(url, ctx.settings.sink_http_timeout_seconds)
    return None
