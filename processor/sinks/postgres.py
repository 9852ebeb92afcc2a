"""The PostgreSQL sink (``POSTGRES_URL``, psycopg 3): every version into
``billing_record_versions``, the latest into ``billing_records``, one transaction per batch.

``billing_records`` is upserted with ``ON CONFLICT (record_id) DO UPDATE ... WHERE
billing_records.version < EXCLUDED.version``: an older version (a replay, a parked version
delivered late) never overwrites a newer one; ``billing_record_versions`` ignores a version it
holds. A lost connection is retried with backoff; a batch PostgreSQL refuses for its data is
written version by version, and the versions it still refuses are parked with its error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import InvalidOperation
from typing import Any

import psycopg
from psycopg import sql

from processor.sinks.base import Outcome, Sink, Transient, Version
from processor.sinks.pgschema import RECORDS, VERSIONS, columns, migrate, to_row

log = logging.getLogger(__name__)


def _insert(table: str, extra_columns: list[str], conflict: sql.Composable) -> sql.Composed:
    names = [*columns(), "extra", *extra_columns]
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) {}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(n) for n in names),
        sql.SQL(", ").join(sql.Placeholder() for _ in names),
        conflict,
    )


def upsert_latest() -> sql.Composed:
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in (*columns(), "extra")
        if c != "record_id"
    )
    conflict = sql.SQL(
        "ON CONFLICT (record_id) DO UPDATE SET {}, updated_at = now()"
        " WHERE {}.version < EXCLUDED.version"
    ).format(updates, sql.Identifier(RECORDS))
    return _insert(RECORDS, [], conflict)


def insert_version() -> sql.Composed:
    return _insert(VERSIONS, ["feed_id"], sql.SQL("ON CONFLICT (record_id, version) DO NOTHING"))


class PostgresSink(Sink):
    name = "postgres"
    max_batch = 1000

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url, self.timeout = url, timeout
        self.conn: psycopg.Connection[Any] | None = None
        self.latest_sql, self.version_sql = upsert_latest(), insert_version()

    def _connection(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed or self.conn.broken:
            try:
                self.conn = psycopg.connect(
                    self.url, autocommit=True, connect_timeout=max(1, int(self.timeout))
                )
                migrate(self.conn)
            except psycopg.OperationalError as exc:
                self.conn = None
                raise Transient(f"PostgreSQL unavailable ({exc.__class__.__name__})") from None
        return self.conn

    def deliver(self, versions: Sequence[Version]) -> Outcome:
        outcome = Outcome()
        try:
            self._write(list(versions))
            return outcome
        except psycopg.OperationalError as exc:
            self._drop()
            raise Transient(f"PostgreSQL: {exc.__class__.__name__}") from None
        except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError,
                ValueError, ArithmeticError) as exc:  # fmt: skip
            log.warning("postgres refused a batch (%s): writing it version by version", exc)
        for version in versions:
            try:
                self._write([version])
            except psycopg.OperationalError as exc:
                self._drop()
                raise Transient(f"PostgreSQL: {exc.__class__.__name__}") from None
            except (psycopg.Error, ValueError, ArithmeticError) as exc:
                outcome.reject(version, _why(exc))
        return outcome

    def _write(self, versions: list[Version]) -> None:
        rows: list[list[Any]] = []
        latest: dict[str, tuple[list[Any], int]] = {}
        for v in versions:
            values, extra = to_row(v.record)
            rows.append([*values, extra, v.entry_id])
            rid = str(v.record["record_id"])
            if rid not in latest or int(v.record["version"]) > latest[rid][1]:
                latest[rid] = ([*values, extra], int(v.record["version"]))
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(self.version_sql, rows)
                cur.executemany(self.latest_sql, [row for row, _ in latest.values()])
        except psycopg.Error:
            if conn.broken:
                self._drop()
            raise

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def close(self) -> None:
        self._drop()


def _why(exc: Exception) -> str:
    if isinstance(exc, InvalidOperation):
        return "postgres: a money field is not a decimal number"
    return f"postgres: {exc.__class__.__name__}: {exc}".strip()
