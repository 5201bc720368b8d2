"""Where flow records go: a SQLite file path or a ``postgresql://`` URL.

Owns: telling the two apart, checking a target before ``statewall run`` starts (and
creating the schema there once), opening a writer's or a reader's connection, the common
error type and the schema version check. Must not know: record building, threads.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Protocol

from .record import SCHEMA_VERSION, Row

PG_SCHEMES = ("postgresql://", "postgres://")


class StoreError(Exception):
    """A flow database that cannot be used (the message says which and why)."""


class Store(Protocol):
    def write(self, rows: list[Row]) -> None: ...

    def select(self, where: str, params: list[Any], desc: bool) -> Iterator[Row]: ...

    def close(self) -> None: ...


def is_pg(target: str) -> bool:
    return target.startswith(PG_SCHEMES)


def describe(target: str) -> str:
    """The target without a password (for logs and messages)."""
    if not is_pg(target):
        return target
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
        d = conninfo_to_dict(target)
        if "password" in d:
            d["password"] = "***"
        return make_conninfo("", **{k: v for k, v in d.items() if v is not None})
    except Exception:
        return target.split("@")[-1]


def check_version(got: list[Any], where: str) -> None:
    if not got:
        raise StoreError(f"{where}: no schema version (flows_schema is empty)")
    v = got[0]
    if v != SCHEMA_VERSION:
        raise StoreError(f"{where}: flow schema version {v}, this statewall uses "
                         f"{SCHEMA_VERSION}")


def check_target(target: str) -> None:
    """Syntax checks that need no connection (ValueError says what is wrong)."""
    if not target:
        raise ValueError("--flows: empty path")
    if is_pg(target):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ValueError("--flows: a PostgreSQL URL needs the psycopg package "
                             "(pip install 'psycopg[binary]')") from None
        from psycopg.conninfo import conninfo_to_dict
        try:
            conninfo_to_dict(target)
        except Exception as e:
            raise ValueError(f"--flows: bad PostgreSQL URL: {e}") from None
        return
    if "://" in target:
        raise ValueError(f"--flows: {target!r}: a file path or a postgresql:// URL")
    d = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(d):
        raise ValueError(f"--flows: {target}: no such directory {d}")
    if os.path.isdir(target):
        raise ValueError(f"--flows: {target} is a directory")


def open_writer(target: str) -> Store:
    """A connection that appends rows (creates the schema when missing)."""
    if is_pg(target):
        from .sink_pg import PgSink
        return PgSink(target)
    from .sink_sqlite import SqliteSink
    return SqliteSink(target)


def open_reader(target: str) -> Store:
    """A connection for queries (never creates anything)."""
    if is_pg(target):
        from .sink_pg import PgSink
        return PgSink(target, readonly=True)
    if not os.path.exists(target):
        raise StoreError(f"{target}: no such flow database")
    from .sink_sqlite import SqliteSink
    return SqliteSink(target, readonly=True)


def prepare(target: str) -> None:
    """Open the target once and create the schema (before the workers start)."""
    open_writer(target).close()
