"""The PostgreSQL sink (``POSTGRES_URL``, psycopg 3): every version into
``billing_record_versions``, the latest into ``billing_records``, one transaction per batch
(``COPY`` into a temporary staging table, then one ``INSERT ... SELECT`` into each table).

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


STAGE = "wa_billing_stage"


def _names(extra_columns: list[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in [*columns(), "extra", *extra_columns])


def copy_in() -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(STAGE), _names(["feed_id"]))


def insert_versions() -> sql.Composed:
    return sql.SQL(
        "INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT (record_id, version) DO NOTHING"
    ).format(sql.Identifier(VERSIONS), _names(["feed_id"]), _names(["feed_id"]),
             sql.Identifier(STAGE))  # fmt: skip


def upsert_latest() -> sql.Composed:
    """The newest staged version of each record, over an older stored one only."""
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in (*columns(), "extra")
        if c != "record_id"
    )
    return sql.SQL(
        "INSERT INTO {records} ({names}) SELECT DISTINCT ON (record_id) {names} FROM {stage}"
        " ORDER BY record_id, version DESC"
        " ON CONFLICT (record_id) DO UPDATE SET {updates}, updated_at = now()"
        " WHERE {records}.version < EXCLUDED.version"
    ).format(records=sql.Identifier(RECORDS), names=_names([]), stage=sql.Identifier(STAGE),
             updates=updates)  # fmt: skip


def create_stage() -> sql.Composed:
    return sql.SQL(
        "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    ).format(sql.Identifier(STAGE), sql.Identifier(VERSIONS))


class PostgresSink(Sink):
    name = "postgres"
    max_batch = 1000

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url, self.timeout = url, timeout
        self.conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed or self.conn.broken:
            try:
                self.conn = psycopg.connect(
                    self.url, autocommit=True, connect_timeout=max(1, int(self.timeout))
                )
                migrate(self.conn)
                self.conn.execute(create_stage())
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
        """COPY the batch into a staging table, then one INSERT for every version and one
        upsert of the newest version of each record, in one transaction."""
        rows = []
        for v in versions:
            values, extra = to_row(v.record)
            rows.append([*values, extra, v.entry_id])
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(copy_in()) as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute(insert_versions())
                cur.execute(upsert_latest())
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
