"""The record of every request that reached a model: its tokens, cost and cache status for
the usage reports and the budgets, and what the request inspector shows.

Recording is an append to a list. A task writes the list to the database in
batches, off the hot path, every ``FLUSH_SECONDS``; closing writes what is left,
so a graceful shutdown loses nothing. The inspector's part of a record is built
on the database's thread, redacted there, and dropped after the retention time,
while the counts stay for the reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..database import Connection, Database, where
from ..errors import NotFound
from ..periodic import every
from ..trace import Trace
from . import inspection, series

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
BATCH = 1000
MAX_PENDING = 100_000  # while the database is down; past this the oldest records are dropped
BUDGET_REFRESH = 10.0  # seconds between reads of every process's spend
PURGE_EVERY = 600.0

SPENT = (
    "SELECT key_id, sum(cost) FROM requests WHERE key_id IS NOT NULL AND created_at >= ?"
    " GROUP BY key_id"
)
_SUMMARY = "id, created_at, key_id, model, status, prompt_tokens, completion_tokens, cost, cache"
DETAIL = f"{inspection.SELECT} WHERE id = ?"
FORGET = "UPDATE requests SET content = NULL WHERE created_at < ? AND content IS NOT NULL"
DELETE = "DELETE FROM requests WHERE created_at < ?"


class RequestNotFound(NotFound):
    default_code = "request_not_found"

    def __init__(self, request_id: str) -> None:
        super().__init__(f"No recorded request with id '{request_id[:80]}'.", param="id")


class Ledger:
    def __init__(
        self,
        database: Database,
        *,
        retention_hours: float,
        usage_days: float,
    ) -> None:
        self.database = database
        self.retention_hours = retention_hours
        self.usage_days = usage_days
        self._pending: list[tuple[tuple[Any, ...], Trace | None]] = []
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # one flush at a time, so records are written in order
        self._tasks: list[asyncio.Task[None]] = []
        # Spend per key in the current day and month: every process's, as last read, plus
        # this process's since.
        self._spent: dict[str, dict[str, float]] = {"day": {}, "month": {}}
        # Readers waiting for the record of a request still being served, by request id.
        self._awaited: dict[str, asyncio.Future[None]] = {}

    async def start(self) -> None:
        await self._read_spend()
        self._tasks = [
            asyncio.create_task(self._write_loop()),
            asyncio.create_task(every(BUDGET_REFRESH, self._read_spend, "reading the spend")),
            asyncio.create_task(every(PURGE_EVERY, self._purge, "removing old records")),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush()

    # -- recording -----------------------------------------------------------------------------

    def record(self, trace: Trace, method: str, path: str) -> None:
        """Keep a request that ended, to be written with the next batch.

        Its row, a tuple of plain values, is made now: keeping the traces themselves
        until the batch is written made the garbage collector walk thousands of live
        objects, which cost more than the writing. Only a trace whose bodies are to be
        kept (with log_content) is kept, for its bodies to be built on the database's
        thread."""
        row = inspection.row(trace, method, path)
        self._pending.append((row, trace if trace.keep_bytes else None))
        if self._awaited:
            arrived = self._awaited.pop(trace.request_id, None)
            if arrived is not None and not arrived.done():
                arrived.set_result(None)
        if trace.key is not None and trace.cost:
            for spent in self._spent.values():
                spent[trace.key.id] = spent.get(trace.key.id, 0.0) + trace.cost
        pending = len(self._pending)
        if pending >= BATCH:
            self._wake.set()
            if pending > MAX_PENDING:
                # A tenth at a time, so that a database that stays down is told of once
                # per so many records, not once per request.
                del self._pending[: pending - MAX_PENDING + MAX_PENDING // 10]
                log.error("the request records are not being written; dropped the oldest")

    def spent(self, key_id: str, period: str) -> float:
        return self._spent[period].get(key_id, 0.0)

    async def flush(self) -> None:
        """Write the records pending now. Those that arrive meanwhile wait for the next
        flush: chasing them made a busy gateway write a few rows at a time, and each
        round trip to the database's thread cost the event loop more than its rows."""
        async with self._flushing:
            taken, self._pending = self._pending, []
            start = 0
            try:
                for start in range(0, len(taken), BATCH):
                    batch = taken[start : start + BATCH]
                    await self.database.run(functools.partial(self._write, batch=batch))
            except BaseException:
                self._pending[:0] = taken[start:]  # first in line for the next try
                raise

    def _write(
        self, db: Connection, *, batch: Sequence[tuple[tuple[Any, ...], Trace | None]]
    ) -> None:
        rows = [inspection.written(values, trace) for values, trace in batch]
        self.database.insert(db, inspection.INTO, rows, inspection.REPEATED)

    async def _write_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("could not write the request records; trying again")

    async def _read_spend(self) -> None:
        await self.flush()  # this process's records first, so that none is counted twice
        now = datetime.now(UTC)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        month = day.replace(day=1)
        for period, since in (("day", day), ("month", month)):
            rows = await self.database.rows(SPENT, since.timestamp())
            self._spent[period] = {key_id: float(cost) for key_id, cost in rows}

    async def _purge(self) -> None:
        now = time.time()
        await self.database.changed(FORGET, now - self.retention_hours * 3600)
        await self.database.changed(DELETE, now - self.usage_days * 86400)

    # -- reading -------------------------------------------------------------------------------

    async def usage(self, key_id: str | None, since: float, until: float) -> list[dict[str, Any]]:
        """Totals per key, model and day."""
        await self.flush()
        clause, args = where(
            ("created_at >= ?", since), ("created_at < ?", until), ("key_id = ?", key_id)
        )
        rows = await self.database.rows(
            "SELECT key_id, model, day, count(*), sum(prompt_tokens), sum(completion_tokens),"
            " sum(cached_tokens), sum(cost), sum(saved),"
            " sum(CASE WHEN cache = 'hit' THEN 1 ELSE 0 END),"
            " sum(CASE WHEN counted_by = 'estimate' THEN 1 ELSE 0 END),"
            " sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END)"
            f" FROM requests{clause} GROUP BY key_id, model, day"
            " ORDER BY day, key_id, model",
            *args,
        )
        names = (
            "key_id", "model", "day", "requests", "prompt_tokens", "completion_tokens",
            "cached_tokens", "cost_usd", "saved_usd", "cache_hits", "estimated", "errors",
        )  # fmt: skip
        return [_totals(dict(zip(names, values, strict=True))) for values in rows]

    async def series(
        self, key_id: str | None, since: float, until: float, bucket: int, by: series.By
    ) -> tuple[list[dict[str, Any]], bool]:
        """Totals per time bucket and model or key, and whether the range held more rows
        than were summed."""
        await self.flush()
        clause, args = where(
            ("created_at >= ?", since), ("created_at < ?", until), ("key_id = ?", key_id)
        )
        statement = series.select(by, clause)

        def summed(db: Connection) -> tuple[list[dict[str, Any]], bool]:
            rows = self.database.execute(db, statement, *args, series.MAX_ROWS + 1).fetchall()
            return series.series(rows[: series.MAX_ROWS], bucket), len(rows) > series.MAX_ROWS

        return await self.database.run(summed)

    async def recent(
        self, key_id: str | None, limit: int, before: float | None
    ) -> list[dict[str, Any]]:
        await self.flush()
        clause, args = where(("key_id = ?", key_id), ("created_at < ?", before))
        rows = await self.database.rows(
            f"SELECT {_SUMMARY} FROM requests{clause} ORDER BY created_at DESC LIMIT ?",
            *args,
            limit,
        )
        names = _SUMMARY.split(", ")
        return [{"object": "request", **dict(zip(names, values, strict=True))} for values in rows]

    async def detail(
        self, request_id: str, key_id: str | None, wait: float = 0.0
    ) -> dict[str, Any]:
        """A request's inspector record; one of another key's requests is not found.

        A request is recorded as its reply ends, a moment after its client has read the
        reply: with ``wait`` seconds, a record not yet there is waited for that long."""
        await self.flush()
        rows = await self.database.rows(DETAIL, request_id)
        if not rows and wait > 0:
            arrived = self._awaited.setdefault(
                request_id, asyncio.get_running_loop().create_future()
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(arrived), wait)
            if self._awaited.get(request_id) is arrived:
                del self._awaited[request_id]
            await self.flush()
            rows = await self.database.rows(DETAIL, request_id)
        if not rows:
            raise RequestNotFound(request_id)
        found = inspection.detail(rows[0])
        if key_id is not None and found["key_id"] != key_id:
            raise RequestNotFound(request_id)
        return found


def _totals(row: dict[str, Any]) -> dict[str, Any]:
    row["cost_usd"] = round(float(row["cost_usd"] or 0), 8)
    row["saved_usd"] = round(float(row["saved_usd"] or 0), 8)
    for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_hits"):
        row[name] = int(row[name] or 0)
    row["estimated"] = int(row["estimated"] or 0)
    row["errors"] = int(row["errors"] or 0)
    row["total_tokens"] = row["prompt_tokens"] + row["completion_tokens"]
    return row
