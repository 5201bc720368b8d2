"""The SQLite flow store: one database file shared by every worker (and readers).

Owns: opening the file (WAL journal so readers never block the writers and the writers
only briefly each other, a busy timeout), creating the ``flows`` table and the
``flows_schema`` version table when missing, batched inserts (one transaction per batch),
and the reader's ``select``. Must not know: record building, threads, command lines.
Schema: ``record.COLUMNS`` (docs/flows.md).
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterator

from .record import COLUMN_NAMES, COLUMNS, SCHEMA_VERSION, Row
from .store import StoreError, check_version

BUSY_TIMEOUT_MS = 10000


def _ddl() -> list[str]:
    cols = ",\n  ".join(f"{n} {t}" for n, t, _ in COLUMNS)
    return [
        "CREATE TABLE IF NOT EXISTS flows_schema (version INTEGER NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS flows (\n  id INTEGER PRIMARY KEY,\n  {cols}\n)",
        "CREATE INDEX IF NOT EXISTS flows_end_time ON flows (end_time)",
        "CREATE INDEX IF NOT EXISTS flows_orig_src ON flows (orig_src)",
        "CREATE INDEX IF NOT EXISTS flows_orig_dst ON flows (orig_dst)",
    ]


class SqliteSink:
    """A writer's (or reader's) connection to one database file."""

    def __init__(self, path: str, readonly: bool = False) -> None:
        self.path = path
        try:
            if readonly:
                self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                          timeout=BUSY_TIMEOUT_MS / 1000,
                                          check_same_thread=False)
            else:
                self.db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000,
                                          isolation_level=None, check_same_thread=False)
            self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if not readonly:
                self._create()
            row = self.db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name='flows_schema'"
            ).fetchone()
            if row is None:
                raise StoreError(f"{path}: not a statewall flow database (no flows_schema "
                                 "table)")
            check_version([r[0] for r in self.db.execute("SELECT version FROM flows_schema")],
                          path)
        except sqlite3.Error as e:
            raise StoreError(f"{path}: {e}") from None

    def _create(self) -> None:
        db = self.db
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch to WAL journal mode ({mode})")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _ddl():
                db.execute(stmt)
            if db.execute("SELECT count(*) FROM flows_schema").fetchone()[0] == 0:
                db.execute("INSERT INTO flows_schema (version) VALUES (?)", (SCHEMA_VERSION,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def write(self, rows: list[Row]) -> None:
        sql = (f"INSERT INTO flows ({', '.join(COLUMN_NAMES)}) VALUES "
               f"({', '.join('?' * len(COLUMN_NAMES))})")
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(sql, rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: {e}") from None

    def select(self, where: str, params: list[Any], desc: bool) -> Iterator[Row]:
        """Rows (``id`` first, then ``COLUMN_NAMES``) matching ``where`` (``?`` params),
        by end time, oldest first (newest first with ``desc``)."""
        order = "DESC" if desc else "ASC"
        sql = (f"SELECT id, {', '.join(COLUMN_NAMES)} FROM flows"
               + (f" WHERE {where}" if where else "")
               + f" ORDER BY end_time {order}, id {order}")
        try:
            cur = self.db.execute(sql, params)
            while True:
                chunk = cur.fetchmany(512)
                if not chunk:
                    return
                yield from chunk
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: {e}") from None

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error:
            pass
