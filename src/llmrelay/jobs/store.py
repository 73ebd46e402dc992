"""Where jobs live between the request that submits one and the worker that runs it.

Workers take jobs on a lease that they renew while they work. A worker that dies
stops renewing, its lease runs out, and another worker takes the job; a worker
whose lease was lost can no longer save or finish the job, so no job completes
twice. Each claim is one UPDATE, which the database makes atomic across
processes.

One class serves SQLite and PostgreSQL: both speak the statements of ``table``
through blocking DB-API drivers, run on threads of the store's own so that the
event loop never waits on the database. What differs between them, connecting,
the schema and locking, is a ``Dialect``'s.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from functools import cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

from . import table
from .job import Job
from .settings import is_postgres

T = TypeVar("T")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...

    def close(self) -> None: ...


class Dialect(Protocol):
    threads: int  # connections the store uses at once
    real: str  # the names of the types that table.MIGRATIONS leaves open
    blob: str
    locking: str  # added to a select that picks a row to take (see table)

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


class JobStore:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._sql = cache(dialect.sql)
        self._threads = ThreadPoolExecutor(dialect.threads, thread_name_prefix="jobs-store")
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
            self._execute(db, table.VERSIONS)
            done = self._execute(db, table.VERSION).fetchone()[0] or 0
            for version, steps in enumerate(table.MIGRATIONS[done:], start=done + 1):
                for step in steps:
                    self._execute(db, step.format(real=self.dialect.real, blob=self.dialect.blob))
                self._execute(db, table.TOOK, version)

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

    async def _run(self, work: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._within, work)

    def _execute(self, db: Connection, statement: str, *args: Any) -> Cursor:
        return db.execute(self._sql(statement), args)

    async def _one(self, statement: str, *args: Any) -> Job | None:
        values = await self._run(lambda db: self._execute(db, statement, *args).fetchone())
        return table.job(values) if values else None

    async def _changed(self, statement: str, *args: Any) -> bool:
        """Whether ``statement`` changed a row."""
        return await self._run(lambda db: self._execute(db, statement, *args).rowcount == 1)

    async def open(self) -> None:
        await self._run(lambda db: None)  # connects, and makes the tables if need be

    async def close(self) -> None:
        await asyncio.to_thread(self._threads.shutdown, wait=True)
        for db in self._connections:
            db.close()
        self._connections.clear()

    async def submit(self, job: Job) -> Job:
        """Store a new job, or return the live job it repeats: one with the same
        idempotency key, or the same deterministic request that has not failed."""

        def submit(db: Connection) -> Job:
            key = job.idempotency_key or job.dedup_key
            if key is None:
                self._execute(db, table.INSERT, *table.row(job))
                return job
            with self.dialect.exclusive(db, key):
                existing = self._repeated(db, job)
                if existing is None:
                    self._execute(db, table.INSERT, *table.row(job))
            return existing or job

        return await self._run(submit)

    def _repeated(self, db: Connection, job: Job) -> Job | None:
        """The stored job that ``job`` repeats, if there is one."""
        for statement, key in (
            (table.BY_IDEMPOTENCY_KEY, job.idempotency_key),
            (table.BY_DEDUP_KEY, job.dedup_key),
        ):
            if key is not None and (values := self._execute(db, statement, key).fetchone()):
                return table.job(values)
        return None

    async def get(self, job_id: str) -> Job | None:
        return await self._one(table.BY_ID, job_id)

    async def recent(self, status: str | None, limit: int, after: str | None) -> list[Job]:
        """Jobs newest first, those older than the job ``after`` when it is given."""
        statement, args = table.recent(status, after, limit)
        rows = await self._run(lambda db: self._execute(db, statement, *args).fetchall())
        return [table.job(values) for values in rows]

    async def claim(self, owner: str, lease: float) -> Job | None:
        """The oldest job waiting for a worker, or whose worker's lease ran out, now held
        by ``owner`` for ``lease`` seconds."""
        now = time.time()
        claim = table.CLAIM.format(locking=self.dialect.locking)
        return await self._one(claim, owner, now + lease, now)

    async def save(self, job: Job, owner: str, lease: float) -> bool:
        """Record a running job's progress and renew its lease; False when ``owner`` no
        longer holds it (its lease ran out, or the job was cancelled)."""
        return await self._changed(table.SAVE, table.body(job), time.time() + lease, job.id, owner)

    async def release(self, job: Job, owner: str) -> None:
        """Give a job back to the queue, as its worker stops."""
        await self._changed(table.RELEASE, table.body(job), job.id, owner)

    async def finish(self, job: Job, owner: str) -> bool:
        """Record a job's end, if ``owner`` still holds it."""
        ended = job.finished_at or time.time()
        return await self._changed(table.FINISH, job.status, ended, table.body(job), job.id, owner)

    async def cancel(self, job_id: str) -> Job | None:
        """Cancel a job that has not ended; the job as it now stands, or None if unknown."""
        await self._changed(table.CANCEL, time.time(), job_id)
        return await self.get(job_id)

    async def purge(self, before: float) -> int:
        """Remove jobs that ended before ``before``; how many went."""
        return await self._run(lambda db: self._execute(db, table.PURGE, before).rowcount)

    async def claim_delivery(self, owner: str, lease: float) -> Job | None:
        """An ended job whose webhook is due, now held by ``owner`` for ``lease`` seconds."""
        now = time.time()
        claim = table.CLAIM_DELIVERY.format(locking=self.dialect.locking)
        return await self._one(claim, owner, now + lease, now)

    async def delivered(self, job: Job, owner: str, retry_at: float | None) -> None:
        """Record a webhook's try: sent or given up (``retry_at`` None), or to be tried
        again at ``retry_at``."""
        await self._changed(
            table.DELIVERED, job.webhook_state, table.body(job), retry_at, job.id, owner
        )

    async def speed(self, model: str) -> float | None:
        """Seconds per token of budget that recent jobs of ``model`` took."""
        values = await self._run(lambda db: self._execute(db, table.SPEED, model).fetchone())
        return float(values[0]) if values else None

    async def record_speed(self, model: str, seconds_per_token: float) -> None:
        weight = table.SPEED_WEIGHT
        await self._changed(table.RECORD_SPEED, model, seconds_per_token, weight, 1 - weight)


def open_store(url: str) -> JobStore:
    """The store a ``jobs.store`` URL names: a SQLite file or a PostgreSQL database."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLite

        return JobStore(SQLite(Path(url.removeprefix("sqlite:///"))))
    if is_postgres(url):
        from .postgres import Postgres

        return JobStore(Postgres(url))
    raise ValueError(f"unsupported job store URL: {url}")
