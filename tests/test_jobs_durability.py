"""Jobs survive their workers: leases fence a worker that lost its job, and a gateway killed
mid-job leaves every accepted job to finish, once, after it restarts."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from llmrelay.database import open_database, schema
from llmrelay.database.postgres import Postgres
from llmrelay.jobs.job import Job, new_id
from llmrelay.jobs.store import JobStore

from . import services
from .conftest import free_port
from .fakes.scripted_upstream import ScriptedUpstream

HI = [{"role": "user", "content": "Count, please."}]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    return str(request.getfixturevalue("postgres_url"))


def test_a_worker_whose_lease_ran_out_cannot_finish(store_url: str) -> None:
    async def scenario() -> None:
        database = open_database(store_url)
        store = JobStore(database)
        await database.open()
        try:
            job = await store.submit(Job(id=new_id(), model="m", request={}))
            first = await store.claim("worker-a", lease=0.1)
            assert first is not None and first.id == job.id and first.runs == 1
            assert await store.claim("worker-b", lease=10) is None  # held by a
            await asyncio.sleep(0.15)
            second = await store.claim("worker-b", lease=10)  # a's lease ran out
            assert second is not None and second.runs == 2
            first.status = second.status = "completed"
            assert not await store.save(first, "worker-a", lease=10)
            assert not await store.finish(first, "worker-a")
            assert await store.finish(second, "worker-b")
            assert not await store.finish(second, "worker-b")  # and only once
            ended = await store.get(job.id)
            assert ended is not None and ended.status == "completed"
            assert ended.finished_at is not None
            assert await store.purge(time.time() + 1) == 1
            assert await store.get(job.id) is None
        finally:
            await database.close()

    asyncio.run(scenario())


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        server.pace = 0.1
        yield server


def test_kill_9_mid_job_and_every_job_completes_once(
    tmp_path: Path, upstream: ScriptedUpstream
) -> None:
    config = tmp_path / "llmrelay.yaml"
    model = upstream.model("count")
    settings: dict[str, Any] = {
        "models": [model],
        "data_dir": str(tmp_path / "data"),
        "jobs": {"workers": 2, "lease_seconds": 1},
    }
    config.write_text(yaml.safe_dump(settings))
    upstream.script("count", [" ".join(str(n) for n in range(20))] * 2)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log = tmp_path / "serve.log"
    first = services.llmrelay(config, log, port)
    try:
        ids = [
            httpx.post(url + "/jobs", json={"model": "count", "messages": HI}).json()["id"]
            for _ in range(4)
        ]
        deadline = time.monotonic() + 10
        while not any(
            httpx.get(f"{url}/jobs/{job_id}").json()["stage"] == "generating" for job_id in ids
        ):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    second = services.llmrelay(config, log, port)
    try:
        deadline = time.monotonic() + 60
        jobs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            jobs = [httpx.get(f"{url}/jobs/{job_id}").json() for job_id in ids]
            if all(job["status"] in ("completed", "failed", "cancelled") for job in jobs):
                break
            time.sleep(0.1)
        assert [job["status"] for job in jobs] == ["completed"] * 4, jobs
        # The jobs the killed gateway had begun (two workers: two at most) were asked again.
        interrupted = [job for job in jobs if job["attempts"] == 2]
        assert 1 <= len(interrupted) <= 2
        assert all(job["attempts"] in (1, 2) for job in jobs)
        assert 4 + len(interrupted) <= len(upstream.asked("count")) <= 4 + 2
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(15)


def test_a_store_whose_database_connection_was_cut_connects_again(postgres_url: str) -> None:
    async def scenario() -> None:
        database = open_database(postgres_url)
        store = JobStore(database)
        await database.open()
        try:
            job = await store.submit(Job(id=new_id(), model="m", request={}))
            # Every thread of the store holds a connection before the cut: calls kept busy
            # side by side take one thread each.
            await asyncio.gather(
                *(database.run(lambda db: time.sleep(0.2)) for _ in range(Postgres.threads))
            )
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            # A call on a cut connection fails; the thread's next call connects afresh. All
            # the store's threads had a connection, and all of them were cut.
            failed, found = 0, None
            for _ in range(Postgres.threads + 1):
                try:
                    found = await store.get(job.id)
                    break
                except psycopg.OperationalError:
                    failed += 1
            assert 1 <= failed <= Postgres.threads
            assert found is not None and found.id == job.id
        finally:
            await database.close()

    asyncio.run(scenario())


def test_a_database_made_by_an_earlier_release_is_brought_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with sqlite3.connect(path) as db:  # the schema's first step alone, and no record of it
        for step in schema.MIGRATIONS[0]:
            db.execute(step.format(real="REAL", blob="BLOB"))

    async def scenario() -> None:
        database = open_database(f"sqlite:///{path}")
        store = JobStore(database)
        await database.open()
        try:
            job = Job(id=new_id(), model="m", request={}, webhook_state="waiting")
            await store.submit(job)
            found = await store.get(job.id)
            assert found is not None and found.webhook_state == "waiting"
        finally:
            await database.close()

    asyncio.run(scenario())
    asyncio.run(scenario())  # and opening it again takes no step twice
    with sqlite3.connect(path) as db:
        versions = [v for (v,) in db.execute("SELECT version FROM schema_version")]
    assert versions == list(range(1, len(schema.MIGRATIONS) + 1))
