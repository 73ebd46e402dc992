"""Where jobs live between the request that submits one and the worker that runs it.

Workers take jobs on a lease that they renew while they work. A worker that dies
stops renewing, its lease runs out, and another worker takes the job; a worker
whose lease was lost can no longer save or finish the job, so no job completes
twice. Each claim is one UPDATE, which the database makes atomic across
processes.

The store speaks the statements of ``table`` to the gateway's ``Database``, SQLite or
PostgreSQL alike.
"""

from __future__ import annotations

import time
from typing import Any

from ..database import Connection, Database
from . import table
from .job import Job


class JobStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.dialect = database.dialect

    def _execute(self, db: Connection, statement: str, *args: Any) -> Any:
        return self.database.execute(db, statement, *args)

    async def _one(self, statement: str, *args: Any) -> Job | None:
        values = await self.database.run(lambda db: self._execute(db, statement, *args).fetchone())
        return table.job(values) if values else None

    async def _changed(self, statement: str, *args: Any) -> bool:
        """Whether ``statement`` changed a row."""
        return await self.database.changed(statement, *args) == 1

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

        return await self.database.run(submit)

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

    async def recent(
        self, status: str | None, limit: int, after: str | None, key_id: str | None = None
    ) -> list[Job]:
        """Jobs newest first, those older than the job ``after`` when it is given, of the key
        ``key_id`` when it is given."""
        statement, args = table.recent(status, after, limit, key_id)
        rows = await self.database.rows(statement, *args)
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
        return await self.database.changed(table.PURGE, before)

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

    async def waiting(self) -> int:
        """How many jobs wait for a worker."""
        rows = await self.database.rows(table.WAITING)
        return int(rows[0][0])

    async def speed(self, model: str) -> float | None:
        """Seconds per token of budget that recent jobs of ``model`` took."""
        values = await self.database.run(
            lambda db: self._execute(db, table.SPEED, model).fetchone()
        )
        return float(values[0]) if values else None

    async def record_speed(self, model: str, seconds_per_token: float) -> None:
        weight = table.SPEED_WEIGHT
        await self._changed(table.RECORD_SPEED, model, seconds_per_token, weight, 1 - weight)
