"""The PostgreSQL tables of the records, derived from one list of record fields.

``billing_records`` holds the latest version of each record (one row per ``record_id``);
``billing_record_versions`` every version (``record_id``, ``version``). The columns are the
export's record columns (``processor.reports.RECORD_COLUMNS``): a column listed there and not
typed here is ``text``; fields a record carries beyond them are kept in ``extra`` (jsonb), so a
new record field never breaks the sink. ``migrate`` creates the tables and adds columns that a
newer processor knows, under an advisory lock (several sinks may start at once).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from processor.reports import RECORD_COLUMNS
from processor.store.ops import INTERNAL_FIELDS

RECORDS, VERSIONS = "billing_records", "billing_record_versions"
TYPES = {
    "record_id": "text NOT NULL",
    "version": "integer NOT NULL",
    "charge_time": "timestamptz",
    "expires_at": "timestamptz",
    "billable": "boolean",
    "void": "boolean",
    "rate": "numeric",
    "billed_rate": "numeric",
    "cost": "numeric",
    "billed_cost": "numeric",
}
LOCK = 7_214_014  # advisory lock id for migrations
OPTIONAL = frozenset({"group_id"})  # columns only some records have: absent when null
ISO = "%Y-%m-%dT%H:%M:%SZ"


def columns() -> tuple[str, ...]:
    return RECORD_COLUMNS


def type_of(column: str) -> str:
    return TYPES.get(column, "text")


MIGRATIONS: tuple[str, ...] = (
    # 1: the two tables (their record columns are added by sync_columns)
    f"""
    CREATE TABLE IF NOT EXISTS {RECORDS} (
        record_id text PRIMARY KEY, version integer NOT NULL,
        extra jsonb NOT NULL DEFAULT '{{}}', updated_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE IF NOT EXISTS {VERSIONS} (
        record_id text NOT NULL, version integer NOT NULL, feed_id text,
        extra jsonb NOT NULL DEFAULT '{{}}', received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (record_id, version));
    """,
    # 2: the month reads (usage, /v1/records, export) need these
    """
    ALTER TABLE billing_records ADD COLUMN IF NOT EXISTS waba_id text;
    ALTER TABLE billing_records ADD COLUMN IF NOT EXISTS billing_month text;
    ALTER TABLE billing_records ADD COLUMN IF NOT EXISTS charge_time timestamptz;
    CREATE INDEX IF NOT EXISTS billing_records_waba_month
        ON billing_records (waba_id, billing_month, charge_time, record_id);
    CREATE INDEX IF NOT EXISTS billing_records_month ON billing_records (billing_month);
    """,
)


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Bring the schema up to date; returns the schema version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS wa_billing_schema (version integer NOT NULL)")
        row = conn.execute("SELECT max(version) FROM wa_billing_schema").fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        for number, statement in enumerate(MIGRATIONS, 1):
            if number > current:
                conn.execute(statement)
                conn.execute("INSERT INTO wa_billing_schema VALUES (%s)", (number,))
        sync_columns(conn)
    return len(MIGRATIONS)


def sync_columns(conn: psycopg.Connection[Any]) -> None:
    """Add every record column this processor knows and the tables lack."""
    for table in (RECORDS, VERSIONS):
        for column in columns():
            if column in ("record_id", "version"):
                continue
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    sql.Identifier(table), sql.Identifier(column), sql.SQL(type_of(column))
                )
            )


# -- records <-> rows ---------------------------------------------------------------------------


def to_row(record: dict[str, Any]) -> tuple[list[Any], str]:
    """A record's column values (typed) and its extra fields as JSON."""
    values = [_to_value(type_of(c), record.get(c)) for c in columns()]
    known = set(columns()) | set(INTERNAL_FIELDS)
    extra = {k: v for k, v in record.items() if k not in known}
    return values, json.dumps(extra, sort_keys=True)


def _to_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "numeric":
        return Decimal(str(value))
    if kind == "timestamptz":
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if kind == "boolean":
        return bool(value)
    if kind.startswith("integer"):
        return int(value)
    return value if isinstance(value, str) else json.dumps(value)


def from_row(names: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    """A row back into the record as the API shows it (money as decimal strings)."""
    record: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in zip(names, row, strict=True):
        if name == "extra":
            extra = value or {}
        elif value is not None or name not in OPTIONAL:
            record[name] = _from_value(value)
    record.update(extra)
    return record


def _from_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(ISO)
    return value
