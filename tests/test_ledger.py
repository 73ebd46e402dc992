"""The ledger's writing of request records, against a real SQLite database: in whole
batches while requests keep arriving, in order after a failed write, and bounded while
the database cannot be written."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from llmrelay.accounting import ledger as ledgers
from llmrelay.accounting.ledger import Ledger
from llmrelay.database import Database, open_database
from llmrelay.trace import Trace

Scenario = Callable[[Database, Ledger], Awaitable[None]]


def _run(tmp_path: Path, scenario: Scenario) -> None:
    async def run() -> None:
        database = open_database(f"sqlite:///{tmp_path}/relay.db")
        await database.open()
        try:
            await scenario(database, Ledger(database, retention_hours=1, usage_days=1))
        finally:
            await database.close()

    asyncio.run(run())


def _record(ledger: Ledger, *ids: str) -> None:
    for request_id in ids:
        trace = Trace(request_id)
        trace.model = "m"
        trace.status = 200
        trace.finish()
        ledger.record(trace, "POST", "/v1/chat/completions")


async def _written(database: Database) -> list[str]:
    rows = await database.rows("SELECT id FROM requests ORDER BY rowid")
    return [request_id for (request_id,) in rows]


def test_records_that_arrive_during_a_write_wait_for_the_next_one(tmp_path: Path) -> None:
    async def scenario(database: Database, ledger: Ledger) -> None:
        _record(ledger, "a", "b")
        # The database's one thread is held, so that the flush is still writing when
        # another record arrives.
        release = threading.Event()
        held = asyncio.ensure_future(database.run(lambda db: release.wait(10)))
        flushing = asyncio.ensure_future(ledger.flush())
        await asyncio.sleep(0.05)
        _record(ledger, "c")
        release.set()
        await held
        await flushing
        assert await _written(database) == ["a", "b"]
        await ledger.flush()
        assert await _written(database) == ["a", "b", "c"]

    _run(tmp_path, scenario)


def test_a_failed_write_keeps_its_records_first_in_line(tmp_path: Path) -> None:
    async def scenario(database: Database, ledger: Ledger) -> None:
        _record(ledger, "a", "b")
        await database.changed("ALTER TABLE requests RENAME TO requests_away")
        with pytest.raises(Exception, match="no such table"):
            await ledger.flush()
        _record(ledger, "c")
        await database.changed("ALTER TABLE requests_away RENAME TO requests")
        await ledger.flush()
        assert await _written(database) == ["a", "b", "c"]

    _run(tmp_path, scenario)


def test_while_nothing_can_be_written_the_oldest_records_go_a_tenth_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ledgers, "BATCH", 10)
    monkeypatch.setattr(ledgers, "MAX_PENDING", 100)

    async def scenario(database: Database, ledger: Ledger) -> None:
        with caplog.at_level(logging.ERROR, logger=ledgers.__name__):
            _record(ledger, *(f"r{n:03d}" for n in range(111)))
        dropped = [r for r in caplog.records if "not being written" in r.getMessage()]
        assert len(dropped) == 1  # one line for the eleven dropped, not one per request
        await ledger.flush()
        # Past 100, the oldest 11 went at once (down to 90); the next ten filled it again.
        assert await _written(database) == [f"r{n:03d}" for n in range(11, 111)]

    _run(tmp_path, scenario)
