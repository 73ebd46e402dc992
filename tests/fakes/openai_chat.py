"""A fake OpenAI-compatible Chat Completions upstream: a real server on loopback that answers by
the shared scenario, and is as strict about the request as the real service.

Routes: ``POST /v1/chat/completions`` (whole, or SSE with ``stream: true``) and ``GET /v1/models``
(a list of model cards). ``base_url`` is the ``/v1`` root that OpenAI SDKs take. Every request
needs ``Authorization: Bearer <key>``, else a 401 ``invalid_api_key``. A request the real service
would refuse gets a 400 ``invalid_request_error`` whose message and ``param`` name the problem:
a missing model, no messages, an unknown role, a tool message whose ``tool_call_id`` no earlier
assistant message called, a content part of the wrong type, a malformed tool, a ``tool_choice``
naming no declared tool, a bad ``response_format``, ``stream_options`` without ``stream``, and
so on. A valid request is read into a ``View`` and answered by ``scenario.answer``; the ``model``
picks the failures:

- any other model: a ``chat.completion`` with the text (``stop``) or the tool calls
  (``tool_calls``, ids ``call_fake0``, ``call_fake1``...), or a stream of ``chat.completion.chunk``
  events: the role, then the text in pieces or each call opened and its arguments in
  ARGUMENT_FRAGMENTS, then the finish reason, then ``data: [DONE]``; with
  ``stream_options.include_usage`` every chunk has ``usage: null`` and a last chunk, with no
  choices, carries the usage
- ``error-<status>``: that status with an OpenAI error body; 429 is ``requests`` /
  ``rate_limit_exceeded`` with ``retry-after: 7``, 5xx is ``server_error``
- ``midstream-error``: streams MIDSTREAM_PIECES, then ``data: {"error": ...}`` and the end of the
  body, without ``[DONE]``; a 500 when not streamed

Every request is recorded, so tests can check exactly what the gateway sent.
"""

from __future__ import annotations

import json
import re
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
from .server import FakeServer, Recorded, sse, sse_start

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MODELS = ["fake-chat"]
CREATED = 1700000000
FINGERPRINT = "fp_fake"
# The content parts each role may send; a string is always fine.
PARTS = {
    "system": ["text"],
    "developer": ["text"],
    "user": ["text", "image_url", "input_audio", "file"],
    "assistant": ["text", "refusal"],
    "tool": ["text"],
}
TOOL_CHOICES = ["none", "auto", "required"]
RESPONSE_FORMATS = ["text", "json_object", "json_schema"]
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class Refused(Exception):
    """What the real service answers with an error status; a 400 names the problem."""

    def __init__(
        self,
        message: str | None = None,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message or f"Upstream says {status}.")
        self.status = status
        self.param = param
        self.code = code


class FakeOpenAIChat(FakeServer):
    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.middlewares.append(_refusals)

    async def _authorized(self, request: web.Request) -> Any:
        """Record the request and check its key; returns the JSON body, None if it has none."""
        try:
            body = await self.record(request)
        except ValueError:
            self.requests.append(Recorded(request.path, dict(request.headers), {}))
            body = None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                401,
            )
        return body

    async def models(self, request: web.Request) -> web.Response:
        await self._authorized(request)
        cards = [
            {"id": m, "object": "model", "created": CREATED, "owned_by": "fake"} for m in MODELS
        ]
        return web.json_response({"object": "list", "data": cards})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._authorized(request)
        view = read(body)
        model, streamed = body["model"], bool(body.get("stream"))
        if model.startswith("error-"):
            raise Refused(status=int(model.removeprefix("error-")))
        failing = model == "midstream-error"
        if failing and not streamed:
            raise Refused(MIDSTREAM_MESSAGE, 500)
        completion_id = f"chatcmpl-fake{len(self.requests)}"
        if not streamed:
            return web.json_response(_completion(completion_id, model, answer(view)))
        usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _chunk(completion_id, model, [choice], usage)

        response = await sse_start(request)
        await sse(response, chunk({"role": "assistant", "content": ""}))
        if failing:
            for piece in MIDSTREAM_PIECES:
                await sse(response, chunk({"content": piece}))
            error = {
                "message": MIDSTREAM_MESSAGE,
                "type": "server_error",
                "param": None,
                "code": None,
            }
            await sse(response, {"error": error})
            return response
        reply = answer(view)
        for delta in _deltas(reply):
            await sse(response, chunk(delta))
        await sse(response, chunk({}, _finish_reason(reply)))
        if usage:
            await sse(response, {**_chunk(completion_id, model, [], usage), "usage": _usage()})
        await response.write(b"data: [DONE]\n\n")
        return response


@web.middleware
async def _refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A ``Refused`` as the OpenAI error body: ``{"error": {message, type, param, code}}``."""
    try:
        return await handler(request)
    except Refused as refusal:
        status, kind, code = refusal.status, "invalid_request_error", refusal.code
        if status == 401:
            code = "invalid_api_key"
        elif status == 429:
            kind, code = "requests", "rate_limit_exceeded"
        elif status >= 500:
            kind = "server_error"
        error = {"message": str(refusal), "type": kind, "param": refusal.param, "code": code}
        headers = {"retry-after": "7"} if status == 429 else {}
        return web.json_response({"error": error}, status=status, headers=headers)


def read(body: Any) -> View:
    """Check a request as Chat Completions does and read it into a ``View``; raises ``Refused``."""
    if not isinstance(body, dict):
        raise Refused(
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON "
            "object as the request body."
        )
    model = body.get("model")
    if model is None:
        raise Refused("you must provide a model parameter", param="model")
    if not isinstance(model, str) or not model:
        raise Refused(
            f"Invalid 'model': expected a non-empty string, got {json.dumps(model)}.",
            param="model",
            code="invalid_value",
        )
    messages = body.get("messages")
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list):
        raise _wrong_type("messages", "an array", messages)
    if not messages:
        raise Refused(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            param="messages",
            code="empty_array",
        )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _wrong_type("stream", "a boolean", stream)
    stream_options = body.get("stream_options")
    if stream_options is not None and not stream:
        raise Refused(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    if not isinstance(stream_options, dict | None):
        raise _wrong_type("stream_options", "an object", stream_options)
    view = View(tools=_tools(body.get("tools")))
    _read_tool_choice(body.get("tool_choice"), view)
    _read_response_format(body.get("response_format"), view)
    called: set[str] = set()
    for i, message in enumerate(messages):
        _read_message(f"messages[{i}]", message, called, view)
    return view


def _read_message(where: str, message: Any, called: set[str], view: View) -> None:
    """Read one message into ``view``; ``called`` holds the tool call ids asked so far."""
    if not isinstance(message, dict):
        raise _wrong_type(where, "an object", message)
    role = message.get("role")
    if role not in PARTS:
        raise _unsupported(f"{where}.role", role, list(PARTS))
    content = message.get("content")
    calls = message.get("tool_calls") if role == "assistant" else None
    if content is None and not calls:
        raise _missing(f"{where}.content")
    text = _content(where, role, content, view)
    if calls is not None:
        called.update(_tool_call_ids(where, calls))
    if role == "tool":
        tool_call_id = message.get("tool_call_id")
        if tool_call_id not in called:
            raise Refused(
                f"Invalid parameter: '{where}.tool_call_id' of {json.dumps(tool_call_id)} not "
                "found in 'tool_calls' of an earlier assistant message.",
                param=f"{where}.tool_call_id",
            )
        view.results.append(text)
    elif role in ("system", "developer"):
        view.system.append(text)
    elif text:
        view.texts.append(text)


def _content(where: str, role: str, content: Any, view: View) -> str:
    """The text of a message's content: a string, or its text parts joined; counts images."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise _wrong_type(f"{where}.content", "a string or an array of content parts", content)
    texts = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in PARTS[role]:
            raise _unsupported(f"{at}.type", kind, PARTS[role])
        value = part.get(kind)
        if kind in ("text", "refusal"):
            if not isinstance(value, str):
                raise _wrong_type(f"{at}.{kind}", "a string", value)
            if kind == "text":
                texts.append(value)
            continue
        if not isinstance(value, dict):
            raise _wrong_type(f"{at}.{kind}", "an object", value)
        if kind == "image_url":
            if not isinstance(value.get("url"), str) or not value["url"]:
                raise _missing(f"{at}.image_url.url")
            view.images += 1
        elif kind == "input_audio" and value.get("format") not in ("wav", "mp3"):
            raise _unsupported(f"{at}.input_audio.format", value.get("format"), ["wav", "mp3"])
        elif kind == "file" and not (value.get("file_id") or value.get("file_data")):
            raise _missing(f"{at}.file.file_id")
    return "".join(texts)


def _tool_call_ids(where: str, calls: Any) -> list[str]:
    """The ids of an assistant message's tool calls, each checked as the real service does."""
    if not isinstance(calls, list):
        raise _wrong_type(f"{where}.tool_calls", "an array", calls)
    ids = []
    for k, call in enumerate(calls):
        at = f"{where}.tool_calls[{k}]"
        if not isinstance(call, dict):
            raise _wrong_type(at, "an object", call)
        if call.get("type") != "function":
            raise _unsupported(f"{at}.type", call.get("type"), ["function"])
        function = call.get("function")
        if not isinstance(function, dict):
            raise _missing(f"{at}.function")
        for key, value in [("id", call.get("id")), ("function.name", function.get("name"))]:
            if not isinstance(value, str) or not value:
                raise _missing(f"{at}.{key}")
        if not isinstance(function.get("arguments"), str):
            raise _wrong_type(f"{at}.function.arguments", "a string", function.get("arguments"))
        ids.append(call["id"])
    return ids


def _tools(tools: Any) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _wrong_type("tools", "an array", tools)
    names = []
    for k, tool in enumerate(tools):
        at = f"tools[{k}]"
        if not isinstance(tool, dict):
            raise _wrong_type(at, "an object", tool)
        if tool.get("type") != "function":
            raise _unsupported(f"{at}.type", tool.get("type"), ["function"])
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _missing(f"{at}.function")
        name = function.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise Refused(
                f"Invalid '{at}.function.name': string does not match pattern. Expected a "
                f"string that matches the pattern '{NAME.pattern}'.",
                param=f"{at}.function.name",
                code="invalid_value",
            )
        if not isinstance(function.get("parameters", {}), dict):
            raise _wrong_type(f"{at}.function.parameters", "an object", function["parameters"])
        names.append(name)
    return names


def _read_tool_choice(choice: Any, view: View) -> None:
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise _unsupported("tool_choice", choice, TOOL_CHOICES)
        view.tool_choice_none = choice == "none"
        return
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or name is None:
        raise Refused(
            "Invalid 'tool_choice': expected 'none', 'auto', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}.",
            param="tool_choice",
            code="invalid_value",
        )
    if name not in view.tools:
        raise Refused(
            f"Invalid value for 'tool_choice': function {json.dumps(name)} not found in 'tools'.",
            param="tool_choice.function.name",
            code="invalid_value",
        )
    view.forced_tool = name


def _read_response_format(response_format: Any, view: View) -> None:
    if response_format is None:
        return
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in RESPONSE_FORMATS:
        raise _unsupported("response_format.type", kind, RESPONSE_FORMATS)
    if kind == "json_object":
        view.schema_keys = []
    if kind != "json_schema":
        return
    json_schema = response_format.get("json_schema")
    if not isinstance(json_schema, dict):
        raise _missing("response_format.json_schema")
    name = json_schema.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise Refused(
            "Invalid 'response_format.json_schema.name': expected a string that matches the "
            f"pattern '{NAME.pattern}'.",
            param="response_format.json_schema.name",
            code="invalid_value",
        )
    schema = json_schema.get("schema")
    if not isinstance(schema, dict):
        raise _missing("response_format.json_schema.schema")
    view.schema_keys = list(schema.get("properties") or {})


def _missing(param: str) -> Refused:
    return Refused(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _unsupported(param: str, value: Any, supported: list[str]) -> Refused:
    listed = ", ".join(f"'{s}'" for s in supported)
    return Refused(
        f"Invalid value for '{param}': {json.dumps(value)}. Supported values are: {listed}.",
        param=param,
        code="invalid_value",
    )


def _wrong_type(param: str, expected: str, value: Any) -> Refused:
    got = {
        type(None): "null", bool: "a boolean", int: "an integer", float: "a number",
        str: "a string", list: "an array", dict: "an object",
    }[type(value)]  # fmt: skip
    return Refused(
        f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
        param=param,
        code="invalid_type",
    )


def _tool_calls(reply: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_fake{k}",
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments},
        }
        for k, c in enumerate(reply)
    ]


def _finish_reason(reply: str | list[ToolCall]) -> str:
    return "stop" if isinstance(reply, str) else "tool_calls"


def _usage() -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }


def _envelope(completion_id: str, kind: str, model: str, choices: list[Any]) -> dict[str, Any]:
    """What a completion and each of its chunks share."""
    return {
        "id": completion_id,
        "object": kind,
        "created": CREATED,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": choices,
    }


def _completion(completion_id: str, model: str, reply: str | list[ToolCall]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if isinstance(reply, str):
        message["content"] = reply
    else:
        message["tool_calls"] = _tool_calls(reply)
    finish = _finish_reason(reply)
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return {**_envelope(completion_id, "chat.completion", model, [choice]), "usage": _usage()}


def _chunk(completion_id: str, model: str, choices: list[Any], usage: bool) -> dict[str, Any]:
    """A ``chat.completion.chunk``; with usage asked for, each one says ``usage: null``."""
    chunk = _envelope(completion_id, "chat.completion.chunk", model, choices)
    return {**chunk, "usage": None} if usage else chunk


def _deltas(reply: str | list[ToolCall]) -> list[dict[str, Any]]:
    """The deltas after the role: text in pieces, or each call opened, then its fragments."""
    if isinstance(reply, str):
        return [{"content": piece} for piece in pieces(reply)]
    deltas = []
    for k, call in enumerate(_tool_calls(reply)):
        opening = {"index": k, **call, "function": {**call["function"], "arguments": ""}}
        deltas.append({"tool_calls": [opening]})
        deltas += [
            {"tool_calls": [{"index": k, "function": {"arguments": fragment}}]}
            for fragment in ARGUMENT_FRAGMENTS
        ]
    return deltas
