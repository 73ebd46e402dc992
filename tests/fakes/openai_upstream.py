"""A fake OpenAI-compatible upstream: a real HTTP server on loopback that follows the wire format.

The requested ``model`` picks the behaviour, so one server covers every scenario:

- ``fake-model`` (or anything unlisted): a fixed answer, or a streamed one when asked
- ``tools-model``: a tool call (two parallel calls when streamed, in argument fragments)
- ``error-400`` / ``error-429`` / ``error-500`` / ``error-401``: that status, OpenAI-shaped
- ``garbage``: a 200 whose body is not JSON
- ``midstream-error``: a 200 stream that sends an ``{"error": ...}`` event after two chunks
- ``truncated``: a stream that stops without ``[DONE]``
- ``slow``: waits ``SLOW_SECONDS`` before answering (for timeouts and cancellation)
- ``leaky-key``: an error whose message echoes the upstream key
- ``crlf``: a stream framed with CRLF line ends, a comment and event names
- ``bad-chunk``: a stream whose second event is not JSON
- ``compact-stream``: a stream as OpenAI frames it, in one write: compact JSON and, when
  usage is asked for, ``"usage":null`` on every chunk before the usage chunk

Every request is recorded, so tests can check exactly what the gateway sent.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from .server import FakeServer, hung_up_within, sse, sse_start

ANSWER = "Hello from the fake upstream."
STREAM_PIECES = ["Hello", " from", " the", " fake", " upstream."]
SLOW_SECONDS = 3.0
TOOL_ARGS = ['{"ci', 'ty": "Pa', 'ris"}']


class FakeUpstream(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        # Slow requests whose connection the gateway closed before the answer was ready.
        self.cancelled = 0

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [_model_card("fake-model")]})

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
            for i, _ in enumerate(inputs)
        ]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        )

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        if body.get("stream"):
            response = await sse_start(request)
            for piece in STREAM_PIECES:
                await sse(response, _text_chunk(body["model"], piece, None))
            await sse(response, _text_chunk(body["model"], "", "stop"))
            await response.write(b"data: [DONE]\n\n")
            return response
        return web.json_response({**_text_chunk(body["model"], ANSWER, "stop"), "usage": _usage()})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model = body["model"]
        self.in_flight += 1
        try:
            return await self._chat(request, body, model)
        finally:
            self.in_flight -= 1

    async def _chat(
        self, request: web.Request, body: dict[str, Any], model: str
    ) -> web.StreamResponse:
        if model.startswith("error-"):
            return _error(int(model.removeprefix("error-")))
        if model == "leaky-key":
            key = request.headers.get("Authorization", "").removeprefix("Bearer ")
            return _error(400, f"Incorrect API key provided: {key}")
        if model == "garbage":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if model == "slow" and await hung_up_within(request, SLOW_SECONDS):
            self.cancelled += 1
            return web.Response(status=499)
        if not body.get("stream"):
            return web.json_response(_completion(model, tools=model == "tools-model"))
        response = await sse_start(request)
        if model == "crlf":
            await response.write(b": keep-alive\r\n\r\n")
            for piece in STREAM_PIECES:
                event = json.dumps(_chunk(model, {"content": piece}, None)).encode()
                await response.write(b"event: message\r\ndata: " + event + b"\r\n\r\n")
            await response.write(b"data: [DONE]\r\n\r\n")
            return response
        if model == "bad-chunk":
            await sse(response, _chunk(model, {"content": STREAM_PIECES[0]}, None))
            await asyncio.sleep(0.05)  # so that the gateway has started its stream
            await response.write(b"data: {not json\n\n")
            return response
        if model == "compact-stream":
            await response.write(_compact_stream(model, body))
            return response
        if model == "tools-model":
            await _stream_tool_calls(response, model)
        else:
            for i, piece in enumerate(STREAM_PIECES):
                delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                await sse(response, _chunk(model, delta, None))
                if model == "midstream-error" and i == 1:
                    await sse(
                        response,
                        {
                            "error": {
                                "message": "The model crashed.",
                                "type": "server_error",
                                "param": None,
                                "code": None,
                            }
                        },
                    )
                    await response.write(b"data: [DONE]\n\n")
                    return response
                if model == "truncated" and i == 1:
                    return response
                if model == "slow-stream":
                    await asyncio.sleep(0.5)
            await sse(response, _chunk(model, {}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            await sse(response, {**_chunk(model, {}, None), "choices": [], "usage": _usage()})
        await response.write(b"data: [DONE]\n\n")
        return response


def _compact_stream(model: str, body: dict[str, Any]) -> bytes:
    asked = bool((body.get("stream_options") or {}).get("include_usage"))
    chunks = [_chunk(model, {"content": piece}, None) for piece in STREAM_PIECES]
    chunks.append(_chunk(model, {}, "stop"))
    if asked:
        chunks = [{**chunk, "usage": None} for chunk in chunks]
        chunks.append({**_chunk(model, {}, None), "choices": [], "usage": _usage()})
    events = [b"data: " + json.dumps(c, separators=(",", ":")).encode() for c in chunks]
    return b"\n\n".join([*events, b"data: [DONE]"]) + b"\n\n"


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1700000000, "owned_by": "fake"}


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}


def _completion(model: str, tools: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": ANSWER, "refusal": None}
    finish = "stop"
    if tools:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": "call_fake1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "".join(TOOL_ARGS)},
            }
        ]
        finish = "tool_calls"
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return {**_envelope(model, "chat.completion", choice), "usage": _usage()}


def _chunk(model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return _envelope(model, "chat.completion.chunk", choice)


def _envelope(model: str, kind: str, choice: dict[str, Any]) -> dict[str, Any]:
    """What every reply and chunk shares; legacy completions have "cmpl-" ids."""
    prefix = "cmpl" if kind == "text_completion" else "chatcmpl"
    return {
        "id": f"{prefix}-fake",
        "object": kind,
        "created": 1700000000,
        "model": model,
        "choices": [choice],
    }


def _text_chunk(model: str, text: str, finish: str | None) -> dict[str, Any]:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    return _envelope(model, "text_completion", choice)


async def _stream_tool_calls(response: web.StreamResponse, model: str) -> None:
    for index, name in enumerate(["get_weather", "get_time"]):
        opening = {
            "index": index,
            "id": f"call_fake{index}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        delta: dict[str, Any] = {"tool_calls": [opening]}
        if index == 0:
            delta = {"role": "assistant", "content": None, **delta}
        await sse(response, _chunk(model, delta, None))
        for fragment in TOOL_ARGS:
            await sse(
                response,
                _chunk(
                    model,
                    {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]},
                    None,
                ),
            )
    await sse(response, _chunk(model, {}, "tool_calls"))


def _error(status: int, message: str | None = None) -> web.Response:
    kinds = {
        400: ("invalid_request_error", "invalid_value"),
        401: ("invalid_request_error", "invalid_api_key"),
        429: ("requests", "rate_limit_exceeded"),
        500: ("server_error", None),
    }
    error_type, code = kinds.get(status, ("server_error", None))
    headers = {"retry-after": "7", "x-ratelimit-remaining-requests": "0"} if status == 429 else {}
    body = {
        "error": {
            "message": message or f"Upstream says {status}.",
            "type": error_type,
            "param": None,
            "code": code,
        }
    }
    return web.json_response(body, status=status, headers=headers)
