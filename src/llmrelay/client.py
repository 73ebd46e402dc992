"""A small client for llmrelay's jobs: submit a request, then wait for it, pushed its
changes over server-sent events, or polling as the server suggests when push is not
available (a proxy that buffers streams, say).

    job = await submit_and_wait({"model": "local", "messages": [...]})
    job["output"]
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
import orjson

from .jobs import webhooks
from .streaming import SSEDecoder

Job = dict[str, Any]
ENDED = frozenset({"completed", "failed", "cancelled"})


class JobError(Exception):
    """The gateway refused a request; ``status`` and ``body`` are its reply."""

    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else str(body)
        super().__init__(f"{status}: {message}")
        self.status = status
        self.body = body


class JobsClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None):
        self.root = base_url.rstrip("/").removesuffix("/v1") + "/v1/jobs"
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.channel: Literal["push", "polling"] = "push"  # how the last wait got its news
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._http = aiohttp.ClientSession(headers=self.headers)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "use the client in 'async with'"
        return self._http

    async def submit(
        self,
        request: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        body = {**request, **({"metadata": metadata} if metadata else {})}
        headers = {"idempotency-key": idempotency_key} if idempotency_key else {}
        return await self._call("POST", self.root, json=body, headers=headers)

    async def get(self, job_id: str) -> Job:
        return await self._call("GET", f"{self.root}/{job_id}")

    async def cancel(self, job_id: str) -> Job:
        return await self._call("POST", f"{self.root}/{job_id}/cancel")

    async def recent(self, status: str | None = None, limit: int = 20) -> list[Job]:
        params = {"limit": str(limit), **({"status": status} if status else {})}
        page = await self._call("GET", self.root, params=params)
        return list(page["data"])

    async def updates(self, job_id: str) -> AsyncIterator[Job]:
        """The job each time it changes, until it ends: pushed, or else polled."""
        self.channel = "push"
        job: Job | None = None
        try:
            async for job in self._pushed(job_id):
                yield job
        except (aiohttp.ClientError, ValueError):
            pass  # no push on this path; polling still works
        if job is not None and job["status"] in ENDED:
            return
        self.channel = "polling"
        while True:
            job = await self.get(job_id)
            yield job
            if job["status"] in ENDED:
                return
            await asyncio.sleep((job.get("poll_after_ms") or 1000) / 1000)

    async def wait(self, job_id: str, on_update: Callable[[Job], None] | None = None) -> Job:
        job: Job = {}
        async for job in self.updates(job_id):
            if on_update is not None:
                on_update(job)
        return job

    async def _pushed(self, job_id: str) -> AsyncIterator[Job]:
        async with self.http.get(f"{self.root}/{job_id}/events") as response:
            if response.status == 404:
                raise JobError(404, orjson.loads(await response.read()))
            if response.status != 200 or not response.content_type == "text/event-stream":
                raise ValueError(f"no event stream: {response.status} {response.content_type}")
            decoder = SSEDecoder()
            async for data in response.content.iter_any():
                for event in decoder.feed(data):
                    yield orjson.loads(event)

    async def _call(self, method: str, url: str, **options: Any) -> Job:
        async with self.http.request(method, url, **options) as response:
            body = orjson.loads(await response.read())
            if response.status >= 400:
                raise JobError(response.status, body)
            return dict(body)


async def submit_and_wait(
    request: dict[str, Any],
    *,
    base_url: str = "http://127.0.0.1:8000",
    api_key: str | None = None,
    metadata: dict[str, Any] | None = None,
    on_update: Callable[[Job], None] | None = None,
) -> Job:
    """Submit ``request`` (a chat-completion body) as a job and return the ended job."""
    async with JobsClient(base_url, api_key) as client:
        job = await client.submit(request, metadata)
        return await client.wait(job["id"], on_update)


def verify_webhook(secret: str, body: bytes, signature: str, tolerance: float = 300) -> bool:
    """For a webhook receiver: whether ``signature`` (the ``llmrelay-signature`` header) is
    the gateway's, under the shared ``secret``, for these exact ``body`` bytes, made at most
    ``tolerance`` seconds ago."""
    return webhooks.verify(secret.encode(), body, signature, tolerance)
