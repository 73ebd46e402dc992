"""One database, spoken to through blocking DB-API drivers (sqlite3, psycopg 3) on threads of
its own, so that the event loop never waits on it.

Each thread keeps its own connection. A connection that was lost (a database
restart, say) is replaced on that thread's next call. The schema is taken in
the recorded steps of ``schema``, one process at a time, as the first
connection is made. What differs between SQLite and PostgreSQL, connecting,
type names and locking, is a ``Dialect``'s.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Any, Protocol, TypeVar

from . import schema

T = TypeVar("T")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# Within SQLite's and PostgreSQL's limits on a statement's parameters, for rows of up to
# 60 values.
ROWS_PER_INSERT = 500


def is_postgres(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A WHERE clause of the ``(condition, value)`` pairs whose value is not None, each
    condition with one ``?``, and its arguments; "" when none is left."""
    kept = [(condition, value) for condition, value in conditions if value is not None]
    if not kept:
        return "", []
    return " WHERE " + " AND ".join(c for c, _ in kept), [value for _, value in kept]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...

    def close(self) -> None: ...


class Dialect(Protocol):
    threads: int  # connections used at once
    real: str  # the names of the types that schema.MIGRATIONS leaves open
    blob: str
    locking: str  # added to a select that picks a row to take

    def connect(self) -> Connection:
        """A new connection in autocommit mode."""
        ...

    def sql(self, statement: str) -> str:
        """``statement`` with this driver's placeholders."""
        ...

    def broken(self, db: Connection) -> bool:
        """Whether ``db`` was lost (a database restart, say), to be replaced by a new one."""
        ...

    def exclusive(self, db: Connection, key: str) -> AbstractContextManager[None]:
        """A transaction that no other one for the same ``key`` runs beside."""
        ...

    def transaction(self, db: Connection) -> AbstractContextManager[None]:
        """A transaction: the statements in it are committed together, or not at all."""
        ...


class Database:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.sql = cache(dialect.sql)
        self._threads = ThreadPoolExecutor(dialect.threads, thread_name_prefix="database")
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._migrated = False

    def _connection(self) -> Connection:
        db: Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self.dialect.connect()
            self._connections.append(db)
            if not self._migrated:
                self._migrate(db)
                self._migrated = True
        return db

    def _migrate(self, db: Connection) -> None:
        """Take the schema's steps that the database has not taken, one process at a time."""
        with self.dialect.exclusive(db, "llmrelay schema"):
            self.execute(db, schema.VERSIONS)
            done = self.execute(db, schema.VERSION).fetchone()[0] or 0
            for version, steps in enumerate(schema.MIGRATIONS[done:], start=done + 1):
                for step in steps:
                    self.execute(db, step.format(real=self.dialect.real, blob=self.dialect.blob))
                self.execute(db, schema.TOOK, version)

    def _within(self, work: Callable[[Connection], T]) -> T:
        db = self._connection()
        try:
            return work(db)
        except Exception:
            if self.dialect.broken(db):
                self._local.db = None  # the next call on this thread connects afresh
                self._connections.remove(db)
                db.close()
            raise

    async def run(self, work: Callable[[Connection], T]) -> T:
        """``work`` done with a connection, on one of the database's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._within, work)

    def execute(self, db: Connection, statement: str, *args: Any) -> Cursor:
        return db.execute(self.sql(statement), args)

    def insert(
        self, db: Connection, into: str, rows: Sequence[Sequence[Any]], suffix: str = ""
    ) -> None:
        """Insert ``rows`` with ``INSERT INTO {into} VALUES (...), (...) {suffix}``, many rows
        to a statement, in one transaction.

        One statement for many rows, rather than one per row, matters beyond the
        saving: the driver lets go of the interpreter's lock for each statement it
        runs, and taking it back from a busy event loop costs that loop a switch
        every time."""
        row = "(" + ", ".join("?" * len(rows[0])) + ")" if rows else ""
        with self.dialect.transaction(db):
            for start in range(0, len(rows), ROWS_PER_INSERT):
                chunk = rows[start : start + ROWS_PER_INSERT]
                statement = f"INSERT INTO {into} VALUES {', '.join([row] * len(chunk))} {suffix}"
                # Past the cache of translated statements: a batch of each size would stay
                # in it for good.
                values = list(chain.from_iterable(chunk))
                db.execute(self.dialect.sql(statement), values)

    async def rows(self, statement: str, *args: Any) -> list[Any]:
        return await self.run(lambda db: self.execute(db, statement, *args).fetchall())

    async def changed(self, statement: str, *args: Any) -> int:
        """How many rows ``statement`` changed."""
        return await self.run(lambda db: self.execute(db, statement, *args).rowcount)

    async def open(self) -> None:
        await self.run(lambda db: None)  # connects, and takes the schema's steps if need be

    async def close(self) -> None:
        await asyncio.to_thread(self._threads.shutdown, wait=True)
        for db in self._connections:
            db.close()
        self._connections.clear()


def open_database(url: str) -> Database:
    """The database a URL names: ``sqlite:///path`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLite

        return Database(SQLite(Path(url.removeprefix("sqlite:///"))))
    if is_postgres(url):
        from .postgres import Postgres

        return Database(Postgres(url))
    raise ValueError(f"unsupported database URL: {url}")
