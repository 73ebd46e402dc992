"""A fake Cohere v2 Chat upstream: a real HTTP server on loopback that follows the wire format.

``POST /v2/chat`` answers whole, or as an SSE stream with ``"stream": true``. It wants
``Authorization: Bearer <key>`` (else a 401) and refuses, with a 400 as the real service
does, any request a translating gateway could get wrong: unknown fields (``top_p``,
``stop``, ``n``, ``max_completion_tokens``, ``stream_options``, ``parallel_tool_calls``...),
an unknown role, a tool result that answers no earlier call, a tool choice other than
``REQUIRED``/``NONE``, ``response_format`` together with tools, and so on.

The requested ``model`` picks the behaviour (see ``scenario``), so one server covers every
scenario:

- any other name: ``answer(view)``, as text (``COMPLETE``) or as tool calls (``TOOL_CALL``,
  with a tool plan, ids like ``get_weather_1`` and the arguments streamed in fragments)
- ``error-<status>``: that status, Cohere-shaped (``{"id", "message"}``); a 429 carries
  ``Retry-After: 7``
- ``midstream-error``: a 200 stream of two pieces, then ``message-end`` with
  ``finish_reason: ERROR`` and ``delta.error``; a 500 when not streamed

Every request is recorded, so tests can check exactly what the gateway sent.
"""

from __future__ import annotations

import json
import uuid
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
from .server import FakeServer, sse, sse_start

# Every top-level field of the v2 Chat request; the real service refuses any other.
FIELDS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "strict_tools",
        "documents",
        "citation_options",
        "response_format",
        "safety_mode",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "k",
        "p",
        "logprobs",
        "tool_choice",
        "thinking",
        "priority",
        "stream",
    }
)
ERROR_MESSAGES = {
    401: "invalid api token",
    429: "You are past the per minute request limit, please wait and try again later.",
    500: "internal server error, this has been reported to our developers",
    503: "The service is overloaded, please try again later.",
}


class Invalid(Exception):
    """A request the real service refuses with a 400."""


class FakeCohereUpstream(FakeServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/chat", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not key.strip():
            return _error(401)
        try:
            view = read(body)
        except Invalid as problem:
            return _error(400, f"invalid request: {problem}")
        model, streamed = body["model"], body.get("stream") is True
        failing = model == "midstream-error"
        if model.startswith("error-"):
            return _error(int(model.removeprefix("error-")))
        if failing and not streamed:
            return _error(500, MIDSTREAM_MESSAGE)
        reply = "".join(MIDSTREAM_PIECES) if failing else answer(view)
        if not streamed:
            return web.json_response(_whole(reply))
        response = await sse_start(request)
        await _stream(response, reply, failing)
        return response


def read(body: dict[str, Any]) -> View:
    """Check a request as the real service would, and read it into a ``View``."""
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise Invalid(f"unknown field: parameter {unknown[0]} is not a valid field")
    if not body.get("model"):
        raise Invalid("model is required")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise Invalid("messages must contain at least one message")
    view = View()
    _read_messages(body["messages"], view)
    for tool in body.get("tools") or []:
        if tool.get("type") != "function" or not (tool.get("function") or {}).get("name"):
            raise Invalid("tools: each tool must be {type: function, function: {name, ...}}")
        view.tools.append(tool["function"]["name"])
    choice = body.get("tool_choice")
    if choice is not None and choice not in ("REQUIRED", "NONE"):
        raise Invalid(f"tool_choice must be REQUIRED or NONE, got {choice!r}")
    if choice == "REQUIRED" and not view.tools:
        raise Invalid("tool_choice REQUIRED needs tools")
    view.tool_choice_none = choice == "NONE"
    fmt = body.get("response_format")
    if fmt is not None:
        if fmt.get("type") not in ("text", "json_object"):
            raise Invalid("response_format.type must be text or json_object")
        if body.get("tools") or body.get("documents"):
            raise Invalid("response_format cannot be combined with tools or documents")
        schema = fmt.get("json_schema")
        if fmt["type"] == "json_object" and schema is not None:
            if schema.get("type") != "object":
                raise Invalid("response_format.json_schema must be a JSON schema of type object")
            view.schema_keys = list(schema.get("properties", {}))
    return view


def _read_messages(messages: list[dict[str, Any]], view: View) -> None:
    call_ids: set[str] = set()
    for i, message in enumerate(messages):
        where, role = f"messages[{i}]", message.get("role")
        if role == "system":
            view.system.extend(_texts(_parts(message.get("content"), {"text"}, where)))
        elif role == "user":
            parts = _parts(message.get("content"), {"text", "image_url"}, where)
            view.images += sum(_is_image(part, where) for part in parts)
            view.texts.extend(_joined(parts))
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            if message.get("content") is None and not calls:
                raise Invalid(f"{where}: an assistant message needs content or tool_calls")
            call_ids.update(_checked_call_id(call, where) for call in calls)
            content = message.get("content") or []
            view.texts.extend(_joined(_parts(content, {"text", "thinking"}, where)))
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not call_id:
                raise Invalid(f"{where}: tool_call_id is required for a tool message")
            if call_id not in call_ids:
                raise Invalid(f"{where}: tool_call_id {call_id!r} matches no earlier tool call")
            parts = _parts(message.get("content"), {"text", "document"}, where)
            view.results.append("".join(_result_text(part) for part in parts))
        else:
            raise Invalid(f"{where}: role must be system, user, assistant or tool, got {role!r}")


def _parts(content: Any, kinds: set[str], where: str) -> list[dict[str, Any]]:
    """A message's content as a list of parts, each of one of ``kinds``."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise Invalid(f"{where}: content must be a string or a list of content parts")
    for part in content:
        if not isinstance(part, dict) or part.get("type") not in kinds:
            raise Invalid(f"{where}: content parts must be of type {', '.join(sorted(kinds))}")
    return content


def _texts(parts: list[dict[str, Any]]) -> list[str]:
    return [part["text"] for part in parts if part["type"] == "text"]


def _joined(parts: list[dict[str, Any]]) -> list[str]:
    """The message's text, as a list of one item, or none when it has no text."""
    text = "".join(_texts(parts))
    return [text] if text else []


def _is_image(part: dict[str, Any], where: str) -> bool:
    if part["type"] != "image_url":
        return False
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str) or not url.startswith(("data:", "https://")):
        raise Invalid(f"{where}: image_url.url must be an https URL or a data: URI")
    return True


def _checked_call_id(call: dict[str, Any], where: str) -> str:
    function = call.get("function") or {}
    if not call.get("id") or call.get("type") != "function" or not function.get("name"):
        raise Invalid(f"{where}: tool_calls need an id, type function and a function name")
    if not isinstance(function.get("arguments"), str):
        raise Invalid(f"{where}: tool_calls[].function.arguments must be a JSON string")
    return str(call["id"])


def _result_text(part: dict[str, Any]) -> str:
    if part["type"] == "text":
        return str(part["text"])
    data = part["document"]["data"]
    return data if isinstance(data, str) else json.dumps(data)


def _reply_call_id(index: int, call: ToolCall) -> str:
    return f"{call.name}_{index + 1}"


def _plan(calls: list[ToolCall]) -> str:
    return f"I will call {', '.join(call.name for call in calls)}."


def _usage() -> dict[str, Any]:
    counts = {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS}
    return {"billed_units": dict(counts), "tokens": dict(counts)}


def _whole(reply: str | list[ToolCall]) -> dict[str, Any]:
    message: dict[str, Any]
    if isinstance(reply, str):
        content = [{"type": "text", "text": reply}]
        message = {"role": "assistant", "content": content, "tool_plan": None, "tool_calls": None}
    else:
        calls = [
            {
                "id": _reply_call_id(i, call),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for i, call in enumerate(reply)
        ]
        message = {"role": "assistant", "tool_plan": _plan(reply), "tool_calls": calls}
    return {
        "id": str(uuid.uuid4()),
        "finish_reason": "COMPLETE" if isinstance(reply, str) else "TOOL_CALL",
        "message": message,
        "usage": {**_usage(), "cached_tokens": 0},
    }


async def _send(response: web.StreamResponse, kind: str, **payload: Any) -> None:
    await sse(response, {"type": kind, **payload}, event=kind)


def _message(**fields: Any) -> dict[str, Any]:
    return {"message": fields}


async def _stream(response: web.StreamResponse, reply: str | list[ToolCall], failing: bool) -> None:
    """The event sequence of a stream; a tool turn's plan takes content block 0."""
    reply_id = str(uuid.uuid4())
    opening = _message(role="assistant", content=[], tool_plan="", tool_calls=[])
    await _send(response, "message-start", id=reply_id, delta=opening)
    delta: dict[str, Any] = {"finish_reason": "COMPLETE"}
    if isinstance(reply, str):
        start = _message(content={"type": "text", "text": ""})
        await _send(response, "content-start", index=0, delta=start)
        for piece in MIDSTREAM_PIECES if failing else pieces(reply):
            await _send(response, "content-delta", index=0, delta=_message(content={"text": piece}))
        if failing:
            delta = {"finish_reason": "ERROR", "error": MIDSTREAM_MESSAGE}
        else:
            await _send(response, "content-end", index=0)
    else:
        for piece in pieces(_plan(reply)):
            await _send(response, "tool-plan-delta", delta=_message(tool_plan=piece))
        for i, call in enumerate(reply):
            index = i + 1
            function = {"name": call.name, "arguments": ""}
            opened = {"id": _reply_call_id(i, call), "type": "function", "function": function}
            await _send(response, "tool-call-start", index=index, delta=_message(tool_calls=opened))
            for fragment in ARGUMENT_FRAGMENTS:
                fragment_delta = _message(tool_calls={"function": {"arguments": fragment}})
                await _send(response, "tool-call-delta", index=index, delta=fragment_delta)
            await _send(response, "tool-call-end", index=index)
        delta = {"finish_reason": "TOOL_CALL"}
    await _send(response, "message-end", id=reply_id, delta={**delta, "usage": _usage()})
    await response.write(b"data: [DONE]\n\n")


def _error(status: int, message: str | None = None) -> web.Response:
    headers = {"Retry-After": "7"} if status == 429 else {}
    message = message or ERROR_MESSAGES.get(status, f"error {status}")
    body = {"id": str(uuid.uuid4()), "message": message}
    return web.json_response(body, status=status, headers=headers)
