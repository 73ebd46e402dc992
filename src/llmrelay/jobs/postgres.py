"""The scaled-out job store's dialect: a PostgreSQL database that any number of gateways
and workers share.

A claim picks its row with ``FOR UPDATE SKIP LOCKED``, so that workers claiming
at the same moment take different jobs rather than queueing on one row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import psycopg

from .store import Connection

CONNECT_TIMEOUT = 10  # seconds
# Held while the tables are made, so that processes starting together do not race.
_SCHEMA_LOCK = 7_210_519
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    runs INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    dedup_key TEXT,
    webhook_state TEXT,
    lease_owner TEXT,
    lease_until DOUBLE PRECISION,
    body BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_waiting ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (idempotency_key);
CREATE INDEX IF NOT EXISTS jobs_dedup ON jobs (dedup_key);
CREATE INDEX IF NOT EXISTS jobs_webhooks ON jobs (webhook_state, finished_at);
CREATE TABLE IF NOT EXISTS model_speed (
    model TEXT PRIMARY KEY,
    seconds_per_token DOUBLE PRECISION NOT NULL
);
"""


class Postgres:
    threads = 4
    locking = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str) -> None:
        self.url = url
        self._ready = False

    def connect(self) -> Connection:
        db = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        if not self._ready:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                db.execute(_SCHEMA)
            self._ready = True
        return cast(Connection, db)

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def broken(self, db: Connection) -> bool:
        return cast(psycopg.Connection[tuple[object, ...]], db).broken

    @contextmanager
    def exclusive(self, db: Connection, key: str) -> Iterator[None]:
        with cast(psycopg.Connection[tuple[object, ...]], db).transaction():
            db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
            yield
