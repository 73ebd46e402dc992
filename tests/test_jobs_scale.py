"""Jobs scaled out on PostgreSQL: gateways that only accept jobs, workers in processes of
their own, and updates that cross between them over LISTEN/NOTIFY or Redis."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import yaml
from websockets.asyncio.client import connect

from llmrelay.client import JobsClient

from . import services
from .conftest import free_port
from .fakes.scripted_upstream import ScriptedUpstream

ENDED = ("completed", "failed", "cancelled")


@dataclass
class Cluster:
    gateways: list[str]  # base URLs, .../v1
    workers: list[subprocess.Popen[bytes]]
    upstream: ScriptedUpstream
    database: str


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


@pytest.fixture(params=["listen-notify", "redis"])
def cluster(
    request: pytest.FixtureRequest,
    postgres_url: str,
    upstream: ScriptedUpstream,
    tmp_path: Path,
) -> Iterator[Cluster]:
    """Two gateways that only accept jobs, and three worker processes of two workers each,
    sharing one PostgreSQL database."""
    jobs: dict[str, Any] = {"store": postgres_url, "workers": 0, "lease_seconds": 3}
    if request.param == "redis":
        jobs["redis"] = request.getfixturevalue("redis_url")
    models = [upstream.model("echo"), upstream.model("slow")]
    config = tmp_path / "llmrelay.yaml"
    config.write_text(yaml.safe_dump({"models": models, "jobs": jobs}))
    workers = tmp_path / "workers.yaml"
    workers.write_text(yaml.safe_dump({"models": models, "jobs": {**jobs, "workers": 2}}))
    ports = [free_port(), free_port()]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(3):
            processes.append(services.llmrelay(workers, tmp_path / f"worker-{n}.log"))
        for n, port in enumerate(ports):
            processes.append(services.llmrelay(config, tmp_path / f"gateway-{n}.log", port))
        gateways = [f"http://127.0.0.1:{port}/v1" for port in ports]
        yield Cluster(gateways, processes[:3], upstream, postgres_url)
    finally:
        for process in processes:
            if process.poll() is None:
                services.stop(process)


def test_200_jobs_through_two_gateways_and_three_workers_each_complete_once(
    cluster: Cluster,
) -> None:
    asked_before = len(cluster.upstream.asked("echo"))
    said = [f"job {n}" for n in range(200)]

    async def scenario() -> dict[str, dict[str, Any]]:
        async with httpx.AsyncClient(timeout=30) as http:

            async def submit(n: int) -> tuple[str, str]:
                # Submitted through one gateway, watched through the other.
                reply = await http.post(
                    cluster.gateways[n % 2] + "/jobs",
                    json={
                        "model": "echo",
                        "messages": [{"role": "user", "content": said[n]}],
                        "response_format": {"type": "json_object"},
                    },
                )
                assert reply.status_code == 202, reply.text
                return said[n], reply.json()["id"]

            submitted = await asyncio.gather(*(submit(n) for n in range(200)))
            ended: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + 90
            while len(ended) < len(submitted) and time.monotonic() < deadline:
                for n, (text, job_id) in enumerate(submitted):
                    if text in ended:
                        continue
                    job = (await http.get(f"{cluster.gateways[(n + 1) % 2]}/jobs/{job_id}")).json()
                    if job["status"] in ENDED:
                        ended[text] = job
                await asyncio.sleep(0.2)
            return ended

    ended = asyncio.run(scenario())
    assert len(ended) == 200, f"{200 - len(ended)} jobs did not end"
    assert Counter(job["status"] for job in ended.values()) == {"completed": 200}
    # Each job got its own answer, and the model was asked once per job: none ran twice.
    assert all(job["output"] == {"said": text} for text, job in ended.items())
    asked = [r["messages"][-1]["content"] for r in cluster.upstream.asked("echo")[asked_before:]]
    assert sorted(asked) == sorted(said)


def test_a_job_is_pushed_through_the_gateway_it_was_not_submitted_to(cluster: Cluster) -> None:
    cluster.upstream.pace = 0.05
    cluster.upstream.script("slow", [" ".join(["word"] * 30)])
    submitted = httpx.post(
        cluster.gateways[0] + "/jobs",
        json={"model": "slow", "messages": [{"role": "user", "content": "Go."}]},
    ).json()
    other = cluster.gateways[1].removesuffix("/v1")

    async def watch() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async def by_socket() -> list[dict[str, Any]]:
            url = f"{other.replace('http://', 'ws://')}/v1/jobs/{submitted['id']}/ws"
            async with connect(url) as socket:
                return [orjson.loads(message) async for message in socket]

        async with JobsClient(other) as client:
            pushed = await asyncio.gather(_collect(client.updates(submitted["id"])), by_socket())
            assert client.channel == "push"
            return pushed[0], pushed[1]

    try:
        by_sse, by_socket = asyncio.run(watch())
    finally:
        cluster.upstream.pace = 0.0
    for updates in (by_sse, by_socket):
        assert updates[-1]["status"] == "completed"
        assert updates[-1]["result"]["choices"][0]["message"]["content"].count("word") == 30
        stages = [update["stage"] for update in updates]
        assert "generating" in stages  # progress made by a worker process, pushed across
        progress = [update["progress"] for update in updates]
        assert progress == sorted(progress)


def test_cancelling_through_one_gateway_stops_a_worker_in_another_process(
    cluster: Cluster,
) -> None:
    cluster.upstream.pace = 0.2
    cluster.upstream.script("slow", [" ".join(["word"] * 200)])
    hung_up = len(cluster.upstream.hung_up)
    job = httpx.post(
        cluster.gateways[0] + "/jobs",
        json={"model": "slow", "messages": [{"role": "user", "content": "Go on."}]},
    ).json()
    try:
        deadline = time.monotonic() + 20
        while httpx.get(f"{cluster.gateways[0]}/jobs/{job['id']}").json()["stage"] != "generating":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        cancelled = httpx.post(f"{cluster.gateways[1]}/jobs/{job['id']}/cancel").json()
        assert cancelled["status"] == "cancelled"
        asked = time.monotonic()
        while len(cluster.upstream.hung_up) == hung_up:
            # The lease's heartbeat would notice in 1 s; the message does it sooner.
            assert time.monotonic() - asked < 0.9, "the worker did not stop the upstream"
            time.sleep(0.02)
    finally:
        cluster.upstream.pace = 0.0
    assert cluster.upstream.hung_up[-1] == "slow"
    ended = httpx.get(f"{cluster.gateways[0]}/jobs/{job['id']}").json()
    assert ended["status"] == "cancelled" and ended["result"] is None


async def _collect(updates: Any) -> list[dict[str, Any]]:
    return [update async for update in updates]


def test_kill_9_a_worker_process_and_the_others_finish_its_jobs(cluster: Cluster) -> None:
    cluster.upstream.pace = 0.05
    cluster.upstream.script("slow", [" ".join(["word"] * 20)] * 20)
    asked_before = len(cluster.upstream.asked("slow"))
    ids = [
        httpx.post(
            cluster.gateways[n % 2] + "/jobs",
            json={"model": "slow", "messages": [{"role": "user", "content": f"Job {n}."}]},
        ).json()["id"]
        for n in range(12)
    ]
    try:
        # The store names each job's holder; kill a worker process that holds one.
        deadline = time.monotonic() + 20
        pids = {str(process.pid): process for process in cluster.workers}
        victim = None
        while victim is None:
            assert time.monotonic() < deadline
            with psycopg.connect(cluster.database) as db:
                owners = db.execute(
                    "SELECT lease_owner FROM jobs WHERE status = 'in_progress'"
                ).fetchall()
            held = [pids[o.split(":")[1]] for (o,) in owners if o and o.split(":")[1] in pids]
            victim = held[0] if held else None
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        jobs: list[dict[str, Any]] = []
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            jobs = [httpx.get(f"{cluster.gateways[1]}/jobs/{job_id}").json() for job_id in ids]
            if all(job["status"] in ENDED for job in jobs):
                break
            time.sleep(0.2)
    finally:
        cluster.upstream.pace = 0.0
    assert [job["status"] for job in jobs] == ["completed"] * 12, jobs
    assert all(
        job["result"]["choices"][0]["message"]["content"].count("word") == 20 for job in jobs
    )
    # The killed process held two jobs at most; each was taken up again, and asked of the
    # model once more.
    with psycopg.connect(cluster.database) as db:
        runs = dict(db.execute("SELECT id, runs FROM jobs").fetchall())
    interrupted = [job_id for job_id in ids if runs[job_id] == 2]
    assert 1 <= len(interrupted) <= 2
    assert all(runs[job_id] in (1, 2) for job_id in ids)
    for job in jobs:
        lost = {"run": 1, "outcome": "worker_lost"} in job["history"]
        assert lost == (job["id"] in interrupted)
    assert len(cluster.upstream.asked("slow")) - asked_before == 12 + len(interrupted)
