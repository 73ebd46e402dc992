"""The jobs table: its schema and the SQL that every store speaks, and how a job maps to a
row.

The statements are written once, with ``?`` placeholders, for SQLite and
PostgreSQL alike; a dialect rewrites the placeholders and adds ``locking`` to the
selects that pick a row to take, where concurrent takers should pass each other.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from ..database import where
from .job import TERMINAL, Job

# How far the newest measure moves a model's average speed.
SPEED_WEIGHT = 0.3

# Fields that have columns of their own, for the queries; the rest travel in ``body``.
COLUMNS = (
    "id",
    "status",
    "created_at",
    "finished_at",
    "runs",
    "idempotency_key",
    "dedup_key",
    "webhook_state",
    "key_id",
)
_NAMES = ", ".join(COLUMNS)
_RETURNING = f"RETURNING {_NAMES}, body"
_ENDED = ", ".join(f"'{status}'" for status in sorted(TERMINAL))

SELECT = f"SELECT {_NAMES}, body FROM jobs"
BY_ID = f"{SELECT} WHERE id = ?"
BY_IDEMPOTENCY_KEY = f"{SELECT} WHERE idempotency_key = ?"
# A repeat of a deterministic request gets the newest job for it that has not failed.
BY_DEDUP_KEY = (
    f"{SELECT} WHERE dedup_key = ? AND status IN ('queued', 'in_progress', 'completed')"
    " ORDER BY created_at DESC LIMIT 1"
)
INSERT = f"INSERT INTO jobs ({_NAMES}, body) VALUES ({', '.join('?' * (len(COLUMNS) + 1))})"
# The oldest job waiting for a worker, or whose worker's lease ran out.
CLAIM = (
    "UPDATE jobs SET status = 'in_progress', runs = runs + 1, lease_owner = ?, lease_until = ?"
    " WHERE id = (SELECT id FROM jobs WHERE status = 'queued'"
    " OR (status = 'in_progress' AND lease_until < ?) ORDER BY created_at LIMIT 1{locking})"
    f" {_RETURNING}"
)
SAVE = (
    "UPDATE jobs SET body = ?, lease_until = ? WHERE id = ? AND lease_owner = ?"
    " AND status = 'in_progress'"
)
RELEASE = (
    "UPDATE jobs SET status = 'queued', runs = runs - 1, body = ?, lease_owner = NULL,"
    " lease_until = NULL WHERE id = ? AND lease_owner = ? AND status = 'in_progress'"
)
FINISH = (
    "UPDATE jobs SET status = ?, finished_at = ?, body = ?, lease_owner = NULL,"
    " lease_until = NULL WHERE id = ? AND lease_owner = ? AND status = 'in_progress'"
)
CANCEL = (
    "UPDATE jobs SET status = 'cancelled', finished_at = ?, lease_owner = NULL,"
    f" lease_until = NULL WHERE id = ? AND status NOT IN ({_ENDED})"
)
WAITING = "SELECT count(*) FROM jobs WHERE status = 'queued'"
PURGE = "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?"
# An ended job whose webhook is waiting to be sent, and not held by a sender, nor waiting
# out the pause before its next try; it is held as a job is, by a lease.
CLAIM_DELIVERY = (
    "UPDATE jobs SET lease_owner = ?, lease_until = ? WHERE id = (SELECT id FROM jobs"
    " WHERE webhook_state = 'waiting' AND finished_at IS NOT NULL"
    " AND (lease_until IS NULL OR lease_until < ?) ORDER BY finished_at LIMIT 1{locking})"
    f" {_RETURNING}"
)
# ``lease_until`` is when a webhook still waiting is tried again.
DELIVERED = (
    "UPDATE jobs SET webhook_state = ?, body = ?, lease_owner = NULL, lease_until = ?"
    " WHERE id = ? AND lease_owner = ?"
)
SPEED = "SELECT seconds_per_token FROM model_speed WHERE model = ?"
RECORD_SPEED = (
    "INSERT INTO model_speed (model, seconds_per_token) VALUES (?, ?)"
    " ON CONFLICT (model) DO UPDATE SET seconds_per_token ="
    " ? * excluded.seconds_per_token + ? * model_speed.seconds_per_token"
)


def recent(
    status: str | None, after: str | None, limit: int, key_id: str | None
) -> tuple[str, list[Any]]:
    """Jobs newest first, of ``status`` when given, older than the job ``after`` when given,
    of the key ``key_id`` when given."""
    clause, args = where(
        ("key_id = ?", key_id),
        ("status = ?", status),
        ("created_at < (SELECT created_at FROM jobs WHERE id = ?)", after),
    )
    return f"{SELECT}{clause} ORDER BY created_at DESC LIMIT ?", [*args, limit]


def row(job: Job) -> tuple[Any, ...]:
    """The values of INSERT for ``job``."""
    return (*(getattr(job, name) for name in COLUMNS), body(job))


def body(job: Job) -> bytes:
    fields = dataclasses.asdict(job)
    for name in COLUMNS:
        del fields[name]
    return orjson.dumps(fields)


def job(values: Any) -> Job:
    """The job a row selected with SELECT, or returned by RETURNING, holds."""
    *columns, stored = values
    return Job(**dict(zip(COLUMNS, columns, strict=True)), **orjson.loads(stored))
