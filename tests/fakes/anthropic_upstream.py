"""A fake Anthropic Messages API upstream: a real server on loopback, strict about the wire format.

Routes: ``POST /v1/messages`` (whole, or SSE with ``stream: true``) and
``POST /v1/messages/count_tokens`` (``{"input_tokens": PROMPT_TOKENS}``). Every request needs a
non-empty key, in ``x-api-key`` or as ``Authorization: Bearer`` (which the official SDK sends),
else 401, and an ``anthropic-version`` header, else 400. It is checked the way the real service
checks it: a 400 ``invalid_request_error`` whose message names the problem. A valid request
is read into a ``View`` and answered by ``scenario.answer``; the ``model`` picks the failures:

- any other model: a ``text`` block (``end_turn``) or ``tool_use`` blocks (``tool_use``), whole or
  streamed: ``message_start``, a ``ping``, ``text_delta``s or ``input_json_delta``s (``""`` first,
  then ARGUMENT_FRAGMENTS), ``message_delta`` with the output usage, ``message_stop``
- ``error-<status>``: that status with the native error body; 429 adds ``retry-after: 7``,
  529 is ``overloaded_error``
- ``midstream-error``: streams MIDSTREAM_PIECES, then ``event: error`` (``overloaded_error``);
  a 500 ``api_error`` when not streamed
- ``held``: streamed, sends ``message_start``, waits until ``resume`` is set (10 s at most),
  then sends all the other events in one write

Every request is recorded, so tests can check exactly what the gateway sent.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .scenario import (
    ARGUMENT_FRAGMENTS,
    COMPLETION_TOKENS,
    MIDSTREAM_MESSAGE,
    MIDSTREAM_PIECES,
    PROMPT_TOKENS,
    ToolCall,
    View,
    answer,
    pieces,
)
from .server import FakeServer, sse_start

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The top-level fields that the reference and the SDK document; the real service refuses others.
FIELDS = {
    "model", "max_tokens", "messages", "system", "tools", "tool_choice", "temperature", "top_p",
    "top_k", "stop_sequences", "thinking", "output_config", "metadata", "service_tier", "stream",
    "cache_control", "container", "inference_geo", "diagnostics", "speed", "user_profile_id",
    "workspace_id",
}  # fmt: skip
BLOCK_TYPES = {
    "text", "image", "document", "search_result", "tool_use", "tool_result", "thinking",
    "redacted_thinking",
}  # fmt: skip
MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
TOOL_CHOICES = {"auto", "any", "tool", "none"}
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}  # fmt: skip


class Refused(Exception):
    """What the real service answers with an error status; a 400 names the problem."""

    def __init__(self, message: str | None = None, status: int = 400) -> None:
        super().__init__(message or f"Upstream says {status}.")
        self.status = status


class FakeAnthropicUpstream(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        # The ``held`` model waits for ``resume`` after message_start; ``resumed`` records,
        # for each such stream, whether it was resumed rather than timed out.
        self.resume = threading.Event()
        self.resumed: list[bool] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.middlewares.append(self._refusals)
        app.on_response_prepare.append(self._stamp)

    @property
    def request_id(self) -> str:
        return f"req_fake{len(self.requests)}"

    async def _stamp(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["request-id"] = self.request_id

    @web.middleware
    async def _refusals(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """A ``Refused`` as the native error body: ``{"type": "error", "error": ...}``."""
        try:
            return await handler(request)
        except Refused as refusal:
            status = refusal.status
            kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
            error = {"type": kind, "message": str(refusal)}
            body = {"type": "error", "error": error, "request_id": self.request_id}
            headers = {"retry-after": "7"} if status == 429 else {}
            return web.json_response(body, status=status, headers=headers)

    async def _read(self, request: web.Request, whole: bool) -> tuple[dict[str, Any], View]:
        """Record the request, check it as the real service does, and read it into a ``View``."""
        try:
            body = await self.record(request)
        except ValueError as error:
            raise Refused("There was an error parsing the body of your request.") from error
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        bearer = scheme.lower() == "bearer" and token.strip()
        if not (request.headers.get("x-api-key", "").strip() or bearer):
            raise Refused("x-api-key header is required", 401)
        if not request.headers.get("anthropic-version"):
            raise Refused("anthropic-version: header is required")
        return body, read(body, whole)

    async def count_tokens(self, request: web.Request) -> web.Response:
        await self._read(request, whole=False)
        return web.json_response({"input_tokens": PROMPT_TOKENS})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body, view = await self._read(request, whole=True)
        model, streamed = body["model"], bool(body.get("stream"))
        if model.startswith("error-"):
            raise Refused(status=int(model.removeprefix("error-")))
        failing = model == "midstream-error"
        if failing and not streamed:
            raise Refused(status=500)
        reply = "".join(MIDSTREAM_PIECES) if failing else answer(view)
        message_id = f"msg_fake{len(self.requests)}"
        if not streamed:
            return web.json_response(_message(message_id, model, reply, COMPLETION_TOKENS))
        events = _stream(message_id, model, reply, failing)
        response = await sse_start(request)
        if model != "held":
            for event in events:
                await _event(response, event)
            return response
        await _event(response, events[0])
        self.resumed.append(await asyncio.to_thread(self.resume.wait, 10))
        await response.write(b"".join(map(_encoded, events[1:])))
        return response


def read(body: dict[str, Any], whole: bool = True) -> View:
    """Check a request as the Messages API does and read it into a ``View``; raises ``Refused``."""
    for key in body:
        if key not in FIELDS:
            raise Refused(f"{key}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Refused("model: Field required")
    max_tokens = body.get("max_tokens")
    if whole and max_tokens is None:
        raise Refused("max_tokens: Field required")
    if whole and (type(max_tokens) is not int or max_tokens < 1):
        raise Refused("max_tokens: Input should be an integer greater than or equal to 1")
    temperature = body.get("temperature", 1.0)
    if type(temperature) not in (int, float) or not 0 <= temperature <= 1:
        raise Refused("temperature: Input should be a number between 0 and 1")
    stops = body.get("stop_sequences", [])
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise Refused("stop_sequences: Input should be a valid list of strings")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Refused("messages: at least one message is required")
    view = View(system=_system(body.get("system")), tools=_tools(body.get("tools")))
    _read_tool_choice(body.get("tool_choice"), view)
    _read_output_config(body.get("output_config"), view)
    asked: list[str] = []  # the tool_use ids of the previous message
    for i, message in enumerate(messages):
        asked = _read_message(i, message, asked, view)
    return view


def _read_message(i: int, message: Any, asked: list[str], view: View) -> list[str]:
    """Read one message into ``view``; returns the tool_use ids the next message must answer."""
    role = message.get("role") if isinstance(message, dict) else None
    if role not in ("user", "assistant"):
        raise Refused(f"messages.{i}.role: Input should be 'user' or 'assistant'")
    content = message.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(blocks, list):
        raise Refused(f"messages.{i}.content: Input should be a valid string or list of blocks")
    if not blocks or content == "":
        raise Refused(f"messages.{i}: all messages must have non-empty content")
    texts: list[str] = []
    answered: list[str] = []
    uses: list[str] = []
    for j, block in enumerate(blocks):
        where = f"messages.{i}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCK_TYPES:
            raise Refused(f"{where}.type: Input tag {kind!r} does not match any expected tag")
        if kind == "text":
            if not isinstance(block.get("text"), str) or not block["text"]:
                raise Refused(f"{where}: text content blocks must be non-empty")
            texts.append(block["text"])
        elif kind == "image":
            _check_image(where, block.get("source"))
            view.images += 1
        elif kind == "tool_use":
            if role != "assistant":
                raise Refused(f"{where}: tool_use blocks are only allowed in assistant messages")
            if not block.get("id"):
                raise Refused(f"{where}.id: Field required")
            if not isinstance(block.get("input"), dict):
                raise Refused(f"{where}.input: Input should be a valid dictionary")
            uses.append(block["id"])
        elif kind == "tool_result":
            if role != "user":
                raise Refused(f"{where}: tool_result blocks are only allowed in user messages")
            if j != len(answered):
                raise Refused(f"{where}: tool_result blocks must come first in a user message")
            if block.get("tool_use_id") not in asked:
                raise Refused(
                    f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{block.get('tool_use_id')} (no matching `tool_use` in the previous message)"
                )
            answered.append(block["tool_use_id"])
            result = block.get("content", "")
            if not isinstance(result, str):
                result = "".join(b.get("text", "") for b in result if b.get("type") == "text")
            view.results.append(result)
    missing = [tool_id for tool_id in asked if tool_id not in answered]
    if missing:
        raise Refused(
            f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(missing)}"
        )
    if texts:
        view.texts.append("".join(texts))
    return uses


def _check_image(where: str, source: Any) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        if source.get("media_type") not in MEDIA_TYPES or not source.get("data"):
            allowed = ", ".join(sorted(MEDIA_TYPES))
            raise Refused(f"{where}.source.media_type: Input should be one of {allowed}")
    elif kind != "url" or not source.get("url"):
        raise Refused(f"{where}.source: an image source is base64 (media_type, data) or url (url)")


def _system(system: Any) -> list[str]:
    if isinstance(system, str | None):
        return [system] if system else []
    if not isinstance(system, list) or any(b.get("type") != "text" for b in system):
        raise Refused("system: Input should be a valid string or a list of text blocks")
    return [b["text"] for b in system]


def _tools(tools: Any) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise Refused("tools: Input should be a valid list")
    for k, tool in enumerate(tools):
        if not isinstance(tool, dict) or not tool.get("name"):
            raise Refused(f"tools.{k}.name: Field required")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise Refused(f"tools.{k}.input_schema: Field required")
        if schema.get("type") != "object":
            raise Refused(f"tools.{k}.input_schema.type: Input should be 'object'")
    return [tool["name"] for tool in tools]


def _read_tool_choice(choice: Any, view: View) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in TOOL_CHOICES:
        raise Refused("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if kind == "tool":
        if not choice.get("name"):
            raise Refused("tool_choice.name: Field required")
        view.forced_tool = choice["name"]
    view.tool_choice_none = kind == "none"


def _read_output_config(config: Any, view: View) -> None:
    output_format = config.get("format") if isinstance(config, dict) else None
    if output_format is None:
        return
    if output_format.get("type") != "json_schema" or not isinstance(
        output_format.get("schema"), dict
    ):
        raise Refused("output_config.format: expected {type: 'json_schema', schema: {...}}")
    view.schema_keys = list(output_format["schema"].get("properties", {}))


def _blocks(reply: str | list[ToolCall]) -> list[dict[str, Any]]:
    if isinstance(reply, str):
        return [{"type": "text", "text": reply, "citations": None}]
    return [
        dict(type="tool_use", id=f"toolu_fake{n}", name=c.name, input=json.loads(c.arguments))
        for n, c in enumerate(reply, 1)
    ]


def _opening(block: dict[str, Any], failing: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A block as ``content_block_start`` opens it, and the deltas that fill it."""
    if block["type"] == "text":
        parts = MIDSTREAM_PIECES if failing else pieces(block["text"])
        return {"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in parts]
    fragments = ["", *ARGUMENT_FRAGMENTS]
    opening = {**block, "input": {}}
    return opening, [{"type": "input_json_delta", "partial_json": f} for f in fragments]


def _stop_reason(reply: str | list[ToolCall]) -> str:
    return "end_turn" if isinstance(reply, str) else "tool_use"


def _message(
    message_id: str, model: str, reply: str | list[ToolCall] | None = None, output_tokens: int = 1
) -> dict[str, Any]:
    """A whole ``Message``; without a reply, the empty one that ``message_start`` carries."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [] if reply is None else _blocks(reply),
        "stop_reason": None if reply is None else _stop_reason(reply),
        "stop_sequence": None,
        "usage": {
            "input_tokens": PROMPT_TOKENS, "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "service_tier": "standard", "server_tool_use": None,
        },
    }  # fmt: skip


def _stream(
    message_id: str, model: str, reply: str | list[ToolCall], failing: bool
) -> list[dict[str, Any]]:
    """The events of a streamed reply, from ``message_start`` to ``message_stop``, or to the
    ``error`` that ends a failing one."""
    events = [{"type": "message_start", "message": _message(message_id, model)}]
    for index, block in enumerate(_blocks(reply)):
        opening, deltas = _opening(block, failing)
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        if index == 0:
            events.append({"type": "ping"})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        if failing:
            error = {"type": "overloaded_error", "message": MIDSTREAM_MESSAGE}
            return [*events, {"type": "error", "error": error}]
        events.append({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": _stop_reason(reply), "stop_sequence": None}
    usage = {"output_tokens": COMPLETION_TOKENS}
    events.append({"type": "message_delta", "delta": delta, "usage": usage})
    return [*events, {"type": "message_stop"}]


async def _event(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(_encoded(data))


def _encoded(data: dict[str, Any]) -> bytes:
    """An SSE event whose name repeats its ``type``, as every Anthropic stream event does."""
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()
