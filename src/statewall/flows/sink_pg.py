"""The PostgreSQL flow store (psycopg 3): the same ``flows`` table as the SQLite one.

Owns: connecting, creating ``flows`` / ``flows_schema`` when missing (under an advisory
lock, so several workers starting at once do not race on CREATE), appending a batch with
one COPY in one transaction, the reader's ``select`` (a server-side cursor: rows stream,
never all in memory). Must not know: record building, threads, command lines.
Schema: ``record.COLUMNS`` (docs/flows.md).
"""

from __future__ import annotations

from typing import Any, Final, Iterator

import psycopg

from .record import COLUMN_NAMES, COLUMNS, SCHEMA_VERSION, Row
from .store import StoreError, check_version, describe

_LOCK_KEY: Final = 0x5357_464C   # "SWFL": pg_advisory_xact_lock key for schema creation
CONNECT_TIMEOUT: Final = 10


def _ddl() -> list[str]:
    cols = ",\n  ".join(f"{n} {t}" for n, _, t in COLUMNS)
    return [
        "CREATE TABLE IF NOT EXISTS flows_schema (version INTEGER NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS flows (\n  id BIGSERIAL PRIMARY KEY,\n  {cols}\n)",
        "CREATE INDEX IF NOT EXISTS flows_end_time ON flows (end_time)",
        "CREATE INDEX IF NOT EXISTS flows_orig_src ON flows (orig_src)",
        "CREATE INDEX IF NOT EXISTS flows_orig_dst ON flows (orig_dst)",
    ]


class PgSink:
    def __init__(self, url: str, readonly: bool = False) -> None:
        self.where = describe(url)
        try:
            self.db = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT)
            with self.db.transaction():
                if not readonly:
                    self.db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                    for stmt in _ddl():
                        self.db.execute(stmt)
                    n = self.db.execute("SELECT count(*) FROM flows_schema").fetchone()
                    if n is not None and n[0] == 0:
                        self.db.execute("INSERT INTO flows_schema (version) VALUES (%s)",
                                        (SCHEMA_VERSION,))
                reg = self.db.execute("SELECT to_regclass('flows_schema')").fetchone()
                if reg is None or reg[0] is None:
                    raise StoreError(f"{self.where}: not a statewall flow database (no "
                                     "flows_schema table)")
                check_version([r[0] for r in self.db.execute(
                    "SELECT version FROM flows_schema")], self.where)
        except psycopg.Error as e:
            raise StoreError(f"{self.where}: {str(e).strip()}") from None

    def write(self, rows: list[Row]) -> None:
        sql = f"COPY flows ({', '.join(COLUMN_NAMES)}) FROM STDIN"
        try:
            with self.db.transaction():
                with self.db.cursor() as cur:
                    with cur.copy(sql) as cp:
                        for r in rows:
                            cp.write_row(r)
        except psycopg.Error as e:
            raise StoreError(f"{self.where}: {str(e).strip()}") from None

    def select(self, where: str, params: list[Any], desc: bool) -> Iterator[Row]:
        order = "DESC" if desc else "ASC"
        sql = (f"SELECT id, {', '.join(COLUMN_NAMES)} FROM flows"
               + (f" WHERE {where.replace('?', '%s')}" if where else "")
               + f" ORDER BY end_time {order}, id {order}")
        try:
            with self.db.transaction():
                with self.db.cursor(name="statewall_flows") as cur:
                    cur.itersize = 512
                    cur.execute(sql, params)
                    yield from cur
        except psycopg.Error as e:
            raise StoreError(f"{self.where}: {str(e).strip()}") from None

    def close(self) -> None:
        try:
            self.db.close()
        except psycopg.Error:
            pass
