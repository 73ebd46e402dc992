"""The scaled-out database's dialect: a PostgreSQL database that any number of gateways
and workers share.

A claim picks its row with ``FOR UPDATE SKIP LOCKED``, so that workers claiming
at the same moment take different jobs rather than queueing on one row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import cast

import psycopg

from .database import Connection

CONNECT_TIMEOUT = 10  # seconds


class Postgres:
    threads = 4
    real, blob = "DOUBLE PRECISION", "BYTEA"
    locking = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str) -> None:
        self.url = url

    def connect(self) -> Connection:
        db = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        return cast(Connection, db)

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def broken(self, db: Connection) -> bool:
        return cast(psycopg.Connection[tuple[object, ...]], db).broken

    def transaction(self, db: Connection) -> AbstractContextManager[None]:
        return cast(psycopg.Connection[tuple[object, ...]], db).transaction()  # type: ignore[return-value]

    @contextmanager
    def exclusive(self, db: Connection, key: str) -> Iterator[None]:
        with cast(psycopg.Connection[tuple[object, ...]], db).transaction():
            db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
            yield
