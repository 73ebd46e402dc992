"""A fake Ollama native upstream: a real HTTP server on loopback that follows ``/api/chat``.

It answers what ``scenario.answer`` says about the request it read, in Ollama's own shapes:
a ChatResponse, or an NDJSON stream (``stream`` defaults to true) of ``done:false`` lines
closed by a ``done:true`` line that carries ``done_reason`` and the metrics.

- any model name: the scenario's text, or its tool calls (whole, arguments as an object, no
  ids, and still ``done_reason: "stop"``); ``"length"`` when ``options.num_predict`` < 5
- ``error-<status>``: that status with ``{"error": "..."}``
- ``midstream-error``: a 200 stream of ``MIDSTREAM_PIECES`` and then an ``{"error": ...}`` line
  (a plain 500 when not streamed)
- a request the real service would refuse, or one still in OpenAI's shape (sampling fields
  at the top level instead of in ``options``, ``data:`` image URLs, string tool arguments):
  a 400 naming the problem
- an ``Authorization`` header that is not ``Bearer <key>``: a 401 (no header is fine, as locally)

Also ``GET /api/tags`` and ``GET /api/version``. Every chat request is recorded.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from .scenario import (
    COMPLETION_TOKENS,
    MIDSTREAM_MESSAGE,
    MIDSTREAM_PIECES,
    PROMPT_TOKENS,
    View,
    answer,
    pieces,
)
from .server import FakeServer

CREATED_AT = "2025-07-07T20:32:53.844124Z"
VERSION = "0.12.6"
ROLES = {"system", "user", "assistant", "tool"}
# OpenAI request fields that a translation must move (into options, format, ...) or drop.
OPENAI_FIELDS = {
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "tool_choice",
    "stream_options",
    "n",
}
# The Modelfile parameters ``options`` may hold (docs/api.md and the SDK's ``Options``).
OPTIONS = {
    *("numa", "num_ctx", "num_batch", "num_gpu", "main_gpu", "low_vram", "f16_kv"),
    *("logits_all", "vocab_only", "use_mmap", "use_mlock", "embedding_only", "num_thread"),
    *("num_keep", "seed", "num_predict", "top_k", "top_p", "min_p", "tfs_z", "typical_p"),
    *("repeat_last_n", "temperature", "repeat_penalty", "presence_penalty"),
    *("frequency_penalty", "mirostat", "mirostat_tau", "mirostat_eta"),
    *("penalize_newline", "stop"),
}
ERROR_MESSAGES = {
    400: "invalid request",
    401: "unauthorized",
    404: "model not found, try pulling it first",
    429: "too many requests",
    500: "the model failed to generate a response",
    502: "an error occurred while connecting to the cloud model",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


class Invalid(Exception):
    """A request the real service would answer with a 400."""


class FakeOllamaUpstream(FakeServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/chat", self.chat)
        app.router.add_get("/api/tags", self.tags)
        app.router.add_get("/api/version", self.version)

    async def tags(self, request: web.Request) -> web.Response:
        details = {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        }
        model = {
            "name": "llama3.2:latest",
            "model": "llama3.2:latest",
            "modified_at": CREATED_AT,
            "size": 2019393189,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": details,
        }
        return _unauthorized(request) or web.json_response({"models": [model]})

    async def version(self, request: web.Request) -> web.Response:
        return _unauthorized(request) or web.json_response({"version": VERSION})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self.record(request)
        except ValueError as exc:
            return _error(400, f"invalid JSON: {exc}")
        if refused := _unauthorized(request):
            return refused
        try:
            view = _read(body)
        except Invalid as exc:
            return _error(400, str(exc))
        model: str = body["model"]
        stream = body.get("stream", True)
        if model.startswith("error-"):
            return _error(int(model.removeprefix("error-")))
        if model == "midstream-error":
            return await _midstream_error(request, model) if stream else _error(500)
        reply = answer(view)
        num_predict = (body.get("options") or {}).get("num_predict", -1)
        done_reason = "length" if 0 <= num_predict < 5 else "stop"
        message: dict[str, Any] = {"role": "assistant", "content": ""}
        if isinstance(reply, str):
            message["content"] = reply
        else:
            message["tool_calls"] = [
                {"function": {"name": call.name, "arguments": json.loads(call.arguments)}}
                for call in reply
            ]
        if not stream:
            return web.json_response({**_line(model, message), **_done(done_reason)})
        response = await _ndjson_start(request)
        if isinstance(reply, str):
            for piece in pieces(reply):
                await _write(response, _line(model, {"role": "assistant", "content": piece}))
        else:
            await _write(response, _line(model, message))
        final = {**_line(model, {"role": "assistant", "content": ""}), **_done(done_reason)}
        await _write(response, final)
        return response


def _read(body: Any) -> View:
    """Check the request as Ollama would, and read it into a ``View``."""
    if not isinstance(body, dict):
        raise Invalid("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("model is required")
    if misplaced := sorted(OPENAI_FIELDS & body.keys()):
        raise Invalid(
            f"OpenAI fields {misplaced} are not part of /api/chat:"
            " sampling goes in options, JSON output in format, and there is no tool_choice"
        )
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise Invalid("options must be an object")
    if unknown := sorted(options.keys() - OPTIONS):
        raise Invalid(f"invalid options {unknown}")
    if not isinstance(options.get("num_predict", -1), int):
        raise Invalid('option "num_predict" must be of type integer')
    if not isinstance(body.get("stream", True), bool):
        raise Invalid("stream must be a boolean")
    view = View(tools=[_tool_name(tool) for tool in body.get("tools") or []])
    schema = body.get("format") or ""
    if isinstance(schema, dict):
        view.schema_keys = list(schema.get("properties", {}))
    elif schema not in ("", "json"):
        raise Invalid(f'invalid format {schema!r}: expected "json" or a JSON schema object')
    messages = body.get("messages") or []
    if not isinstance(messages, list):
        raise Invalid("messages must be an array")
    for message in messages:
        _read_message(message, view)
    return view


def _read_message(message: Any, view: View) -> None:
    if not isinstance(message, dict):
        raise Invalid("messages[] must be objects")
    role = message.get("role")
    if role not in ROLES:
        raise Invalid(f"invalid role {role!r}: must be one of system, user, assistant, tool")
    content = message.get("content", "")
    if not isinstance(content, str):
        raise Invalid(f"message content must be a string, not {type(content).__name__}")
    for image in message.get("images") or []:
        if not isinstance(image, str) or image.startswith("data:"):
            raise Invalid("images must be bare base64 strings, without a data: URL prefix")
        try:
            base64.b64decode(image, validate=True)
        except binascii.Error as exc:
            raise Invalid(f"illegal base64 data in images: {exc}") from None
        view.images += 1
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            raise Invalid("tool_calls[].function.name is required")
        if not isinstance(function.get("arguments"), dict):
            raise Invalid("tool_calls[].function.arguments must be an object, not a JSON string")
    if role == "system":
        view.system.append(content)
    elif role == "tool":
        view.results.append(content)
    elif content:
        view.texts.append(content)


def _tool_name(tool: Any) -> str:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function":
        raise Invalid('tools[] must be {"type": "function", "function": {...}}')
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise Invalid("tools[].function.name is required")
    return name


def _unauthorized(request: web.Request) -> web.Response | None:
    header = request.headers.get("Authorization")
    if header is None or (header.startswith("Bearer ") and header.removeprefix("Bearer ").strip()):
        return None
    return _error(401)


def _line(model: str, message: dict[str, Any]) -> dict[str, Any]:
    return {"model": model, "created_at": CREATED_AT, "message": message, "done": False}


def _done(done_reason: str) -> dict[str, Any]:
    """What the last line (or the whole reply) adds: the stop reason and metrics, in ns."""
    return {
        "done_reason": done_reason,
        "done": True,
        "total_duration": 3244883583,
        "load_duration": 2969184542,
        "prompt_eval_count": PROMPT_TOKENS,
        "prompt_eval_duration": 141656333,
        "eval_count": COMPLETION_TOKENS,
        "eval_duration": 133293625,
    }


async def _ndjson_start(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "application/x-ndjson"})
    await response.prepare(request)
    return response


async def _write(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(json.dumps(data).encode() + b"\n")


async def _midstream_error(request: web.Request, model: str) -> web.StreamResponse:
    response = await _ndjson_start(request)
    for piece in MIDSTREAM_PIECES:
        await _write(response, _line(model, {"role": "assistant", "content": piece}))
    await _write(response, {"error": MIDSTREAM_MESSAGE})
    return response


def _error(status: int, message: str | None = None) -> web.Response:
    text = message or ERROR_MESSAGES.get(status, f"upstream says {status}")
    return web.json_response({"error": text}, status=status)
