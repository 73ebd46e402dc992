"""Where jobs live between the request that submits one and the worker that runs it.

Workers take jobs on a lease that they renew while they work. A worker that dies
stops renewing, its lease runs out, and another worker takes the job; a worker
whose lease was lost can no longer save or finish the job, so no job completes
twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from .job import Job


class JobStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, job: Job) -> Job:
        """Store a new job, or return the live job it repeats: one with the same
        idempotency key, or the same deterministic request that has not failed."""
        ...

    async def get(self, job_id: str) -> Job | None: ...

    async def recent(self, status: str | None, limit: int, after: str | None) -> list[Job]:
        """Jobs newest first, those older than the job ``after`` when it is given."""
        ...

    async def claim(self, owner: str, lease: float) -> Job | None:
        """The oldest job waiting for a worker, or whose worker's lease ran out, now held
        by ``owner`` for ``lease`` seconds."""
        ...

    async def save(self, job: Job, owner: str, lease: float) -> bool:
        """Record a running job's progress and renew its lease; False when ``owner`` no
        longer holds it (its lease ran out, or the job was cancelled)."""
        ...

    async def release(self, job: Job, owner: str) -> None:
        """Give a job back to the queue, as its worker stops."""
        ...

    async def finish(self, job: Job, owner: str) -> bool:
        """Record a job's end, if ``owner`` still holds it."""
        ...

    async def cancel(self, job_id: str) -> Job | None:
        """Cancel a job that has not ended; the job as it now stands, or None if unknown."""
        ...

    async def purge(self, before: float) -> int:
        """Remove jobs that ended before ``before``; how many went."""
        ...

    async def speed(self, model: str) -> float | None:
        """Seconds per token of budget that recent jobs of ``model`` took."""
        ...

    async def record_speed(self, model: str, seconds_per_token: float) -> None: ...


def open_store(url: str) -> JobStore:
    """The store a ``jobs.store`` URL names; only SQLite files so far."""
    from .sqlite import SQLiteStore

    if url.startswith("sqlite:///"):
        return SQLiteStore(Path(url.removeprefix("sqlite:///")))
    raise ValueError(f"unsupported job store URL: {url}")
