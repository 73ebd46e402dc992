"""Jobs: throughput from submit to completed, and how soon a client is pushed the end.

Against a fast scripted upstream (a short JSON answer, streamed at once), it runs:

1. throughput: JOBS jobs submitted 32 at a time, timed from the first submit until the
   store holds them all completed, counted straight from the database so that the
   measure adds no HTTP load;
   - SQLite: one ``llmrelay serve`` with WORKERS workers;
   - PostgreSQL: the same; and then one gateway that only accepts jobs with two
     ``llmrelay worker`` processes of WORKERS/2 each, woken by LISTEN/NOTIFY;
2. push: for PUSHES jobs one at a time, the time from the upstream's last byte to the
   ended job reaching a client watching over SSE and one over WebSocket, in one process
   on SQLite and across processes on PostgreSQL (submitted to a gateway whose worker is
   in another process).

usage: .venv/bin/python bench/jobs.py [JOBS] [PUSHES]
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg
import yaml
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import services  # noqa: E402
from tests.fakes.scripted_upstream import ScriptedUpstream  # noqa: E402

WORKERS = 8
SUBMITTERS = 32
JOB = {
    "model": "bench",
    "messages": [{"role": "user", "content": "A recipe as JSON."}],
    "response_format": {"type": "json_object"},
}


def config(folder: Path, upstream: ScriptedUpstream, **jobs: Any) -> Path:
    path = folder / f"config-{services.free_port()}.yaml"
    settings = {
        "log_level": "warning",
        "models": [upstream.model("bench")],
        "data_dir": str(folder),
        "jobs": jobs,
    }
    path.write_text(yaml.safe_dump(settings))
    return path


@contextmanager
def started(folder: Path, gateway: Path, workers: list[Path] = ()) -> Iterator[str]:  # type: ignore[assignment]
    """A gateway from ``gateway`` (its /v1 URL), and a worker process per config in ``workers``."""
    with ExitStack() as stack:
        for n, path in enumerate(workers):
            process = services.llmrelay(path, folder / f"worker-{n}.log")
            stack.callback(services.stop, process)
        port = services.free_port()
        process = services.llmrelay(gateway, folder / "gateway.log", port)
        stack.callback(services.stop, process)
        yield f"http://127.0.0.1:{port}/v1"


async def throughput(url: str, jobs: int, completed: Callable[[], int]) -> float:
    """Jobs per second, from the first submit until ``completed()`` counts them all."""
    start = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        queue = iter(range(jobs))

        async def submitter() -> None:
            for _ in queue:
                async with http.post(url + "/jobs", json=JOB) as reply:
                    assert reply.status == 202, await reply.text()

        await asyncio.gather(*(submitter() for _ in range(SUBMITTERS)))
    while True:  # the database is another process's: there is nothing to await
        if completed() >= jobs:
            break
        await asyncio.sleep(0.02)
    return jobs / (time.perf_counter() - start)


async def push_delays(
    submit_to: str, watch_at: str, upstream: ScriptedUpstream, pushes: int
) -> dict[str, list[float]]:
    """Milliseconds from the upstream's last byte to each channel's last update."""
    delays: dict[str, list[float]] = {"sse": [], "websocket": []}
    async with aiohttp.ClientSession() as http:
        for _ in range(pushes):
            upstream.pace = 0.05  # a job of about 0.2 s, so that the watchers are in place
            async with http.post(submit_to + "/jobs", json=JOB) as reply:
                job_id = (await reply.json())["id"]

            heard = await asyncio.gather(
                by_sse(http, watch_at, job_id), by_socket(watch_at, job_id)
            )
            ended = upstream.ended[-1]
            for channel, at in zip(("sse", "websocket"), heard, strict=True):
                delays[channel].append((at - ended) * 1000)
    upstream.pace = 0.0
    return delays


async def by_sse(http: aiohttp.ClientSession, watch_at: str, job_id: str) -> float:
    """When the SSE stream of the job told that it completed."""
    async with http.get(f"{watch_at}/jobs/{job_id}/events") as events:
        async for line in events.content:
            if line.startswith(b"data:") and b'"completed"' in line:
                return time.monotonic()
    raise AssertionError("the events ended before the job")


async def by_socket(watch_at: str, job_id: str) -> float:
    """When the WebSocket of the job told that it completed."""
    async with connect(watch_at.replace("http://", "ws://") + f"/jobs/{job_id}/ws") as socket:
        async for message in socket:
            if orjson.loads(message)["status"] == "completed":
                return time.monotonic()
    raise AssertionError("the socket closed before the job ended")


def sqlite_completed(path: Path) -> Callable[[], int]:
    def count() -> int:
        with sqlite3.connect(path) as db:
            return int(
                db.execute("SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()[0]
            )

    return count


def postgres_completed(url: str) -> Callable[[], int]:
    def count() -> int:
        with psycopg.connect(url) as db:
            row = db.execute("SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()
            return int(row[0]) if row else 0

    return count


def summary(delays: list[float]) -> str:
    ordered = sorted(delays)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms, max {ordered[-1]:.1f} ms"


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    pushes = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    with (
        tempfile.TemporaryDirectory() as tmp,
        ScriptedUpstream() as upstream,
        services.postgres() as server,
    ):
        folder = Path(tmp)
        print(f"jobs: {jobs} submitted {SUBMITTERS} at a time; {WORKERS} workers in all")

        lite = folder / "sqlite"
        lite.mkdir()
        with started(lite, config(lite, upstream, workers=WORKERS)) as url:
            rate = asyncio.run(throughput(url, jobs, sqlite_completed(lite / "jobs.db")))
            print(f"  SQLite, one process:                 {rate:7.1f} jobs/s")
            sqlite_push = asyncio.run(push_delays(url, url, upstream, pushes))

        one = services.fresh_database(server, "bench_one")
        with started(folder, config(folder, upstream, store=one, workers=WORKERS)) as url:
            rate = asyncio.run(throughput(url, jobs, postgres_completed(one)))
            print(f"  PostgreSQL, one process:             {rate:7.1f} jobs/s")

        spread = services.fresh_database(server, "bench_spread")
        gateway = config(folder, upstream, store=spread, workers=0)
        worker = config(folder, upstream, store=spread, workers=WORKERS // 2)
        with started(folder, gateway, [worker, worker]) as url:
            rate = asyncio.run(throughput(url, jobs, postgres_completed(spread)))
            print(f"  PostgreSQL, gateway + 2 workers:     {rate:7.1f} jobs/s")

            print(f"push: {pushes} jobs, upstream's last byte to the client's last update")
            for channel, delays in sqlite_push.items():
                print(f"  SQLite, one process, {channel:9}:     {summary(delays)}")
            crossed = asyncio.run(push_delays(url, url, upstream, pushes))
            for channel, delays in crossed.items():
                print(f"  PostgreSQL, across processes, {channel:9}: {summary(delays)}")


if __name__ == "__main__":
    main()
