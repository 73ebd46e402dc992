"""The embedded database's dialect: one SQLite file in write-ahead-log mode, which several
gateway processes on one machine can share.

SQLite lets one writer in at a time, so the store keeps one connection on one
thread, and every call waits its turn there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import cast

from .database import Connection


class SQLite:
    threads = 1
    real, blob = "REAL", "BLOB"
    locking = ""  # one writer at a time: a claim has nothing to pass

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL keeps every commit through a crash of the process; only losing power
        # can take back the last ones.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=10000")
        return cast(Connection, db)

    def sql(self, statement: str) -> str:
        return statement

    def broken(self, db: Connection) -> bool:
        return False  # a file does not go away as a server can

    def exclusive(self, db: Connection, key: str) -> AbstractContextManager[None]:
        # IMMEDIATE takes the write lock at once, so that two processes submitting the
        # same request cannot both find no job and both insert one.
        return _transaction(db, "BEGIN IMMEDIATE")

    def transaction(self, db: Connection) -> AbstractContextManager[None]:
        return _transaction(db, "BEGIN")


@contextmanager
def _transaction(db: Connection, begin: str) -> Iterator[None]:
    db.execute(begin)
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
