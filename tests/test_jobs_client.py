"""The jobs client and the ``llmrelay jobs`` command against a real gateway: push when the
path allows it, polling when it does not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import ClientSession, web

from llmrelay.cli import main
from llmrelay.client import JobError, JobsClient, submit_and_wait

from .conftest import Running, run_gateway
from .fakes.scripted_upstream import ScriptedUpstream
from .fakes.server import FakeServer

HI = [{"role": "user", "content": "Count, please."}]


class NoPushProxy(FakeServer):
    """A proxy in front of the gateway that cannot stream: it refuses the events route
    and forwards everything else."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self.forward)

    async def forward(self, request: web.Request) -> web.Response:
        if request.path.endswith("/events"):
            return web.Response(status=501, text="streaming is not supported here")
        async with (
            ClientSession() as http,
            http.request(
                request.method,
                self.target + request.path_qs,
                data=await request.read(),
                headers={"content-type": "application/json"},
            ) as reply,
        ):
            return web.Response(
                status=reply.status, body=await reply.read(), content_type=reply.content_type
            )


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        server.pace = 0.05
        yield server


@pytest.fixture(scope="module")
def relay(upstream: ScriptedUpstream, tmp_path_factory: Any) -> Iterator[Running]:
    model = upstream.model("count")
    with run_gateway({"models": [model]}, tmp_path_factory.mktemp("client")) as running:
        yield running


def test_submit_and_wait_is_pushed_each_change(relay: Running) -> None:
    seen: list[dict[str, Any]] = []
    job = asyncio.run(
        submit_and_wait(
            {"model": "count", "messages": HI, "max_tokens": 10},
            base_url=relay.url,
            metadata={"run": 1},
            on_update=seen.append,
        )
    )
    assert job["status"] == "completed" and job["metadata"] == {"run": 1}
    assert seen[-1] == job and len(seen) >= 2


def test_without_push_the_client_polls(relay: Running) -> None:
    async def scenario() -> tuple[dict[str, Any], str]:
        with NoPushProxy(relay.url) as proxy:
            async with JobsClient(proxy.root) as client:
                job = await client.submit({"model": "count", "messages": HI})
                ended = await client.wait(job["id"])
                return ended, client.channel

    job, channel = asyncio.run(scenario())
    assert job["status"] == "completed"
    assert channel == "polling"


def test_client_errors_carry_the_gateway_reply(relay: Running) -> None:
    async def scenario() -> None:
        async with JobsClient(relay.url) as client:
            with pytest.raises(JobError) as caught:
                await client.get("job_nope")
            assert caught.value.status == 404
            with pytest.raises(JobError):
                await client.wait("job_nope")

    asyncio.run(scenario())


def test_the_jobs_command(
    relay: Running, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    url = ["--url", relay.url]
    schema = tmp_path / "answer.json"
    schema.write_text(json.dumps({"type": "object", "required": ["ok"]}))
    assert main(["jobs", "submit", "Say ok", "--model", "count", "--schema", str(schema),
                 "--wait", *url]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    job = json.loads(out)
    assert job["status"] == "completed" and job["output"] == {"ok": True}
    assert "100%" in err and "[" + "#" * 30 + "]" in err  # the progress bar reached the end

    assert main(["jobs", "get", job["id"], *url]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == job["id"]
    assert main(["jobs", "list", "--status", "completed", *url]) == 0
    assert job["id"] in capsys.readouterr().out
    assert main(["jobs", "cancel", job["id"], *url]) == 0  # ended already: it stays completed
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    assert main(["jobs", "get", "job_nope", *url]) == 1
    assert "No job with id" in capsys.readouterr().err
