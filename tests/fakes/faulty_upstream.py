"""A fault-injecting OpenAI-compatible upstream: a real server on loopback whose requests each
pick a fault, to test what the gateway does when upstreams fail.

Route: ``POST /v1/chat/completions``, whole or streamed (``stream: true``: the role, two text
pieces, the finish reason, ``[DONE]``). The fault comes from the request's ``x-fault`` header
(a deployment's ``headers`` sets it for every request), else from the plan for its ``model``
(``plan(model, [faults])``, one per request, then ``ok``):

- ``ok``: the reply
- ``<status>``: that status with an OpenAI error body, such as ``500``, ``503``, ``529``,
  ``400``, ``400-context`` (``context_length_exceeded``) or ``400-filter`` (``content_filter``,
  as Azure refuses a prompt)
- ``429:<seconds>``: a 429 with ``retry-after``; ``429-ms:<ms>`` with ``retry-after-ms``;
  ``429-date:<seconds>`` with ``retry-after`` as an HTTP date; ``429-reset:<duration>`` with
  ``x-ratelimit-reset-requests``
- ``reset``: the connection is dropped before any reply
- ``stall:<seconds>``: waits before the headers
- ``stall-stream:<seconds>``: streams the role and a piece, then waits, then the rest
- ``truncate``: streams the role and a piece, then ends the body without ``[DONE]``
- ``malformed``: streams the role, then a chunk that is not JSON
- ``drip:<seconds>``: streams the whole reply one byte at a time, that long apart
- ``filtered``: the content filter stops the answer before any words (whole or streamed)
- ``filtered-late``: streams the role and a piece, then stops on the content filter

Every request is recorded with the monotonic time it arrived; a stream's end records when,
and whether the gateway hung up first.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from aiohttp import web

from .server import FakeServer, hung_up_within, sse_start

TEXT = ["Hello", " there"]


@dataclass
class Arrival:
    model: str
    fault: str
    at: float
    ended: float | None = None
    hung_up: bool = False


class FaultyUpstream(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[Arrival] = []
        self._plans: dict[str, deque[str]] = defaultdict(deque)

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def plan(self, model: str, faults: list[str]) -> None:
        self._plans[model] = deque(faults)

    def seen(self, model: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.model == model]

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body["model"]
        plan = self._plans[model]
        fault = request.headers.get("x-fault") or (plan.popleft() if plan else "ok")
        arrival = Arrival(model, fault, time.monotonic())
        self.arrivals.append(arrival)
        kind, _, arg = fault.partition(":")
        if kind == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if kind == "stall":
            await asyncio.sleep(float(arg))
        if kind.split("-")[0].isdigit():
            return _error(kind, arg)
        if not body.get("stream"):
            return web.json_response(_completion(model, filtered=kind == "filtered"))
        return await self._stream(request, model, kind, arg, arrival)

    async def _stream(
        self, request: web.Request, model: str, kind: str, arg: str, arrival: Arrival
    ) -> web.StreamResponse:
        events = [_chunk(model, {"role": "assistant", "content": ""})]
        events += [_chunk(model, {"content": piece}) for piece in TEXT]
        events += [_chunk(model, {}, "stop"), b"data: [DONE]\n\n"]
        response = await sse_start(request)
        try:
            if kind == "drip":
                for byte in b"".join(events):
                    await response.write(bytes([byte]))
                    await asyncio.sleep(float(arg))
            elif kind.startswith("filtered"):
                said = events[:2] if kind == "filtered-late" else events[:1]
                stop = [_chunk(model, {}, "content_filter"), events[-1]]
                await response.write(b"".join(said + stop))
            elif kind == "malformed":
                await response.write(events[0] + b"data: {not json\n\n")
            elif kind in ("stall-stream", "truncate"):
                await response.write(events[0] + events[1])
                if kind == "stall-stream":
                    arrival.hung_up = await hung_up_within(request, float(arg))
                    await response.write(b"".join(events[2:]))
            else:
                await response.write(b"".join(events))
        except (ConnectionResetError, ConnectionError):
            arrival.hung_up = True
        arrival.ended = time.monotonic()
        return response


def _error(kind: str, arg: str) -> web.Response:
    status = int(kind.split("-")[0])
    headers: dict[str, str] = {}
    if kind == "429":
        headers["retry-after"] = arg
    elif kind == "429-ms":
        headers["retry-after-ms"] = arg
    elif kind == "429-date":
        headers["retry-after"] = formatdate(time.time() + float(arg), usegmt=True)
    elif kind == "429-reset":
        headers["x-ratelimit-reset-requests"] = arg
    code = {"400-context": "context_length_exceeded", "400-filter": "content_filter"}.get(kind)
    error_type = "invalid_request_error" if status < 500 else "server_error"
    error = {"message": f"Injected {kind}.", "type": error_type, "param": None, "code": code}
    return web.json_response({"error": error}, status=status, headers=headers)


def _completion(model: str, filtered: bool) -> dict[str, Any]:
    content = "" if filtered else "".join(TEXT)
    finish = "content_filter" if filtered else "stop"
    message = {"role": "assistant", "content": content, "refusal": None}
    return {
        "id": "chatcmpl-faulty", "object": "chat.completion", "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }  # fmt: skip


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-faulty", "object": "chat.completion.chunk", "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }  # fmt: skip
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"
