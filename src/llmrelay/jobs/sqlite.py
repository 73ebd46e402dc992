"""The embedded job store: one SQLite file in write-ahead-log mode, which several gateway
processes on one machine can share.

SQLite calls block, so they run on one thread of the store's own, in order; each
claim is a single UPDATE, which SQLite's write lock makes atomic across
processes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .job import TERMINAL, Job

T = TypeVar("T")

# How far the newest measure moves a model's average speed.
SPEED_WEIGHT = 0.3

# Fields that have columns of their own, for the queries; the rest travel in ``body``.
_COLUMNS = (
    "id",
    "status",
    "created_at",
    "finished_at",
    "runs",
    "idempotency_key",
    "dedup_key",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    runs INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    dedup_key TEXT,
    lease_owner TEXT,
    lease_until REAL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_waiting ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (idempotency_key);
CREATE INDEX IF NOT EXISTS jobs_dedup ON jobs (dedup_key);
CREATE TABLE IF NOT EXISTS model_speed (
    model TEXT PRIMARY KEY,
    seconds_per_token REAL NOT NULL
);
"""
_SELECT = f"SELECT {', '.join(_COLUMNS)}, body FROM jobs"
_LIVE = "('queued', 'in_progress', 'completed')"


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobs-sqlite")

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        assert db is not None, "the store is not open"
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, db)

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL keeps every commit through a crash of the process; only losing power
            # can take back the last ones.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=10000")
            db.executescript(_SCHEMA)
            return db

        loop = asyncio.get_running_loop()
        self._db = await loop.run_in_executor(self._thread, connect)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(lambda db: db.close())
            self._db = None
        self._thread.shutdown(wait=True)

    async def submit(self, job: Job) -> Job:
        def submit(db: sqlite3.Connection) -> Job:
            db.execute("BEGIN IMMEDIATE")
            try:
                existing = _repeated(db, job)
                if existing is None:
                    db.execute(
                        f"INSERT INTO jobs ({', '.join(_COLUMNS)}, body) VALUES (?,?,?,?,?,?,?,?)",
                        (*_columns(job), _body(job)),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return existing or job

        return await self._run(submit)

    async def get(self, job_id: str) -> Job | None:
        def get(db: sqlite3.Connection) -> Job | None:
            row = db.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
            return _job(row) if row else None

        return await self._run(get)

    async def recent(self, status: str | None, limit: int, after: str | None) -> list[Job]:
        def recent(db: sqlite3.Connection) -> list[Job]:
            where, args = [], []
            if status is not None:
                where.append("status = ?")
                args.append(status)
            if after is not None:
                where.append("created_at < (SELECT created_at FROM jobs WHERE id = ?)")
                args.append(after)
            clause = f" WHERE {' AND '.join(where)}" if where else ""
            rows = db.execute(
                f"{_SELECT}{clause} ORDER BY created_at DESC LIMIT ?", (*args, limit)
            ).fetchall()
            return [_job(row) for row in rows]

        return await self._run(recent)

    async def claim(self, owner: str, lease: float) -> Job | None:
        def claim(db: sqlite3.Connection) -> Job | None:
            now = time.time()
            row = db.execute(
                "UPDATE jobs SET status = 'in_progress', runs = runs + 1, lease_owner = ?,"
                " lease_until = ? WHERE id = (SELECT id FROM jobs WHERE status = 'queued'"
                " OR (status = 'in_progress' AND lease_until < ?) ORDER BY created_at LIMIT 1)"
                f" RETURNING {', '.join(_COLUMNS)}, body",
                (owner, now + lease, now),
            ).fetchone()
            return _job(row) if row else None

        return await self._run(claim)

    async def save(self, job: Job, owner: str, lease: float) -> bool:
        def save(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE jobs SET body = ?, lease_until = ? WHERE id = ? AND lease_owner = ?"
                " AND status = 'in_progress'",
                (_body(job), time.time() + lease, job.id, owner),
            )
            return cursor.rowcount == 1

        return await self._run(save)

    async def release(self, job: Job, owner: str) -> None:
        def release(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE jobs SET status = 'queued', runs = runs - 1, body = ?, lease_owner = NULL,"
                " lease_until = NULL WHERE id = ? AND lease_owner = ? AND status = 'in_progress'",
                (_body(job), job.id, owner),
            )

        await self._run(release)

    async def finish(self, job: Job, owner: str) -> bool:
        def finish(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, body = ?, lease_owner = NULL,"
                " lease_until = NULL WHERE id = ? AND lease_owner = ? AND status = 'in_progress'",
                (job.status, job.finished_at or time.time(), _body(job), job.id, owner),
            )
            return cursor.rowcount == 1

        return await self._run(finish)

    async def cancel(self, job_id: str) -> Job | None:
        def cancel(db: sqlite3.Connection) -> Job | None:
            ended = ", ".join(f"'{status}'" for status in TERMINAL)
            db.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, lease_owner = NULL,"
                f" lease_until = NULL WHERE id = ? AND status NOT IN ({ended})",
                (time.time(), job_id),
            )
            row = db.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
            return _job(row) if row else None

        return await self._run(cancel)

    async def purge(self, before: float) -> int:
        def purge(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?", (before,)
            )
            return cursor.rowcount

        return await self._run(purge)

    async def speed(self, model: str) -> float | None:
        def speed(db: sqlite3.Connection) -> float | None:
            row = db.execute(
                "SELECT seconds_per_token FROM model_speed WHERE model = ?", (model,)
            ).fetchone()
            return float(row[0]) if row else None

        return await self._run(speed)

    async def record_speed(self, model: str, seconds_per_token: float) -> None:
        def record(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO model_speed (model, seconds_per_token) VALUES (?, ?)"
                " ON CONFLICT (model) DO UPDATE SET seconds_per_token ="
                " ? * excluded.seconds_per_token + (1 - ?) * seconds_per_token",
                (model, seconds_per_token, SPEED_WEIGHT, SPEED_WEIGHT),
            )

        await self._run(record)


def _repeated(db: sqlite3.Connection, job: Job) -> Job | None:
    """The stored job that ``job`` repeats, if there is one."""
    if job.idempotency_key is not None:
        row = db.execute(f"{_SELECT} WHERE idempotency_key = ?", (job.idempotency_key,)).fetchone()
        if row:
            return _job(row)
    if job.dedup_key is not None:
        row = db.execute(
            f"{_SELECT} WHERE dedup_key = ? AND status IN {_LIVE} ORDER BY created_at DESC",
            (job.dedup_key,),
        ).fetchone()
        if row:
            return _job(row)
    return None


def _columns(job: Job) -> tuple[Any, ...]:
    return tuple(getattr(job, name) for name in _COLUMNS)


def _body(job: Job) -> bytes:
    fields = dataclasses.asdict(job)
    for name in _COLUMNS:
        del fields[name]
    return orjson.dumps(fields)


def _job(row: tuple[Any, ...]) -> Job:
    *columns, body = row
    return Job(**dict(zip(_COLUMNS, columns, strict=True)), **orjson.loads(body))
