"""What every fake upstream shares: a real aiohttp server on loopback, in its own thread,
that records each request it is sent."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeServer:
    """Subclasses add their routes in ``routes``; ``start`` serves them on a free port."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[Recorded] = []

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}"

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> None:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def boot() -> None:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            self.routes(app)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(boot())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def last(self) -> Recorded:
        return self.requests[-1]

    async def record(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        self.requests.append(Recorded(request.path, dict(request.headers), body))
        return body


async def sse_start(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    return response


async def sse(response: web.StreamResponse, data: Any, event: str | None = None) -> None:
    head = f"event: {event}\n".encode() if event else b""
    await response.write(head + b"data: " + json.dumps(data).encode() + b"\n\n")


async def hung_up_within(request: web.Request, seconds: float) -> bool:
    """Wait up to ``seconds``, or until the client closes the connection: whether it did."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if request.transport is None or request.transport.is_closing():
            return True
        await asyncio.sleep(0.005)
    return False
