"""An OpenAI-compatible upstream that streams slowly, for the playground's Stop button: a real
server on loopback.

Route: ``POST /v1/chat/completions``, streamed only. Each stream sends ``pieces`` words,
one chunk every ``pace`` seconds, then ``[DONE]``, and keeps a ``Drip`` record of when it
started, how many chunks it sent, and when it ended: either finished, or the moment it saw
the gateway close the connection (watched every 10 ms between chunks, so it is seen at once).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .server import FakeServer, hung_up_within, sse_start


@dataclass
class Drip:
    model: str
    started: float  # time.monotonic()
    sent: int = 0
    finished: float | None = None  # the last byte went
    closed: float | None = None  # the gateway hung up first


class DrippingUpstream(FakeServer):
    def __init__(self, pieces: int = 200, pace: float = 0.1) -> None:
        super().__init__()
        self.pieces = pieces
        self.pace = pace
        self.drips: list[Drip] = []

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    @property
    def full_seconds(self) -> float:
        """How long a stream takes when nobody hangs up."""
        return self.pieces * self.pace

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        drip = Drip(body["model"], time.monotonic())
        self.drips.append(drip)
        response = await sse_start(request)
        try:
            await response.write(_chunk(drip.model, {"role": "assistant", "content": ""}))
            for index in range(self.pieces):
                if await hung_up_within(request, self.pace):
                    drip.closed = time.monotonic()
                    return response
                await response.write(_chunk(drip.model, {"content": f"drop{index} "}))
                drip.sent += 1
            await response.write(_chunk(drip.model, {}, "stop"))
            await response.write(b"data: [DONE]\n\n")
            drip.finished = time.monotonic()
        except ConnectionError:
            drip.closed = time.monotonic()
        return response


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    chunk = {
        "id": "chatcmpl-drip",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [choice],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"
