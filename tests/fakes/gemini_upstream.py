"""A fake Google Gemini upstream (Generative Language v1beta): a real HTTP server on loopback
that follows the wire format and is as strict about its input as the real service.

Routes: ``POST /v1beta/models/{model}:generateContent`` and
``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``. The model in the path picks
the scenario:

- any model not listed below: ``scenario.answer`` of the request, as text or as whole
  ``functionCall`` parts (``args`` an object, no ids, finish reason still ``STOP``)
- ``error-<status>``: that status with a google.rpc.Status body; 429 is ``RESOURCE_EXHAUSTED``
  with a ``RetryInfo`` detail (``retryDelay: "7s"``), 503 is ``UNAVAILABLE``
- ``midstream-error``: a 200 stream of ``MIDSTREAM_PIECES``, then a raw ``{"error": ...}``
  event and the end of the body (a plain 500 when not streamed)

Each request needs a key (``x-goog-api-key`` or ``?key=``), else 401. A request the real
service would refuse gets a 400 ``INVALID_ARGUMENT`` naming the problem. Streams are CRLF
framed ``data:`` events, one GenerateContentResponse each, with no sentinel.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from .scenario import (
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

FIELDS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "cachedContent",
    "generationConfig",
}
# The members of the ``data`` oneof of a Part: each part holds exactly one.
PART_DATA = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
MODES = {"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"}
STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
RESPONSE_ID = "fake-gemini-response"


class Invalid(Exception):
    """A request that the real service refuses with 400 INVALID_ARGUMENT."""


class FakeGeminiUpstream(FakeServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{tail:.*}", self.generate)

    async def generate(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["tail"].rpartition(":")
        if method not in ("generateContent", "streamGenerateContent"):
            return _error(404, f"Method not found: {method!r}.")
        try:
            body: Any = await self.record(request)
        except ValueError:
            body = None
        if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            return _error(401, "Request is missing the API key: send x-goog-api-key or ?key=.")
        stream = method == "streamGenerateContent"
        if stream and request.query.get("alt") != "sse":
            return _error(400, "streamGenerateContent needs alt=sse for an SSE stream.")
        try:
            view = _read(body)
        except Invalid as problem:
            return _error(400, str(problem))
        if model.startswith("error-"):
            return _error(int(model.removeprefix("error-")))
        if model == "midstream-error" and not stream:
            return _error(500, MIDSTREAM_MESSAGE)
        if not stream:
            return web.json_response(_reply(model, _parts(answer(view)), final=True))
        response = await sse_start(request)
        if model == "midstream-error":
            for piece in MIDSTREAM_PIECES:
                await _event(response, _reply(model, [{"text": piece}], final=False))
            await _event(response, _status(500, MIDSTREAM_MESSAGE))
            return response
        reply = answer(view)
        # Text comes in pieces; each function call comes whole in a chunk of its own.
        chunks = (
            [[{"text": p}] for p in pieces(reply)]
            if isinstance(reply, str)
            else [[part] for part in _parts(reply)]
        )
        for i, parts in enumerate(chunks):
            await _event(response, _reply(model, parts, final=i == len(chunks) - 1))
        return response


def _read(body: Any) -> View:
    """Validate a GenerateContentRequest as the real service does, and read it into a View."""
    if not isinstance(body, dict):
        raise Invalid("Invalid JSON payload received. Expected a JSON object.")
    for key in body:
        if _camel(key) not in FIELDS:
            raise Invalid(
                f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
            )
    contents = _get(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    system = _get(body, "systemInstruction") or {}
    view = View(system=[p["text"] for p in system.get("parts") or [] if "text" in p])
    for i, content in enumerate(contents):
        _read_content(view, content, f"contents[{i}]")
    for tool in _get(body, "tools") or []:
        view.tools += [d.get("name") for d in _get(tool, "functionDeclarations") or []]
    calling = _get(_get(body, "toolConfig") or {}, "functionCallingConfig") or {}
    mode = calling.get("mode", "AUTO")
    allowed = _get(calling, "allowedFunctionNames") or []
    if mode not in MODES:
        raise Invalid(
            f"Invalid value at 'tool_config.function_calling_config.mode' "
            f"(type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode"
            f'), "{mode}"; use one of {sorted(MODES)}'
        )
    if allowed and mode not in ("ANY", "VALIDATED"):
        raise Invalid(
            "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names:"
            f" only allowed when mode is ANY or VALIDATED, not {mode}"
        )
    view.tool_choice_none = mode == "NONE"
    view.forced_tool = allowed[0] if mode == "ANY" and len(allowed) == 1 else None
    view.schema_keys = _schema_keys(_get(body, "generationConfig") or {})
    return view


def _read_content(view: View, content: Any, where: str) -> None:
    if not isinstance(content, dict):
        raise Invalid(f"Invalid value at '{where}': a Content must be a JSON object.")
    role = content.get("role") or "user"
    if role not in ("user", "model"):
        raise Invalid(
            f"* GenerateContentRequest.{where}.role: Please use a valid role: user, model "
            f"(got {role!r})."
        )
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise Invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
    texts = []
    for j, part in enumerate(parts):
        at = f"{where}.parts[{j}]"
        kinds = [
            kind for kind in PART_DATA if isinstance(part, dict) and _get(part, kind) is not None
        ]
        if len(kinds) != 1:
            raise Invalid(
                f"* GenerateContentRequest.{at}.data: a Part must hold exactly one of "
                f"{', '.join(PART_DATA[:5])}; this one holds {kinds or 'none'}."
            )
        value = _get(part, kinds[0])
        if kinds[0] == "text":
            texts.append(value)
            continue
        _struct(value, f"{at}.{kinds[0]}")
        if kinds[0] in ("inlineData", "fileData"):
            view.images += 1 if str(_get(value, "mimeType") or "").startswith("image/") else 0
        elif kinds[0] == "functionCall":
            _struct(value.get("args", {}), f"{at}.function_call.args")
        elif kinds[0] == "functionResponse":
            response = _struct(value.get("response"), f"{at}.function_response.response")
            view.results.append(_result_text(response))
    if texts:
        view.texts.append("".join(texts))


def _struct(value: Any, at: str) -> dict[str, Any]:
    """A google.protobuf.Struct field: only a JSON object will do."""
    if not isinstance(value, dict):
        raise Invalid(
            f"Invalid value at '{at}' (type.googleapis.com/google.protobuf.Struct): "
            f"must be a JSON object, got {json.dumps(value)}"
        )
    return value


def _result_text(response: dict[str, Any]) -> str:
    """``output`` (or ``error``) if given, else the whole object counts as output."""
    value = response.get("output", response.get("error", response))
    return value if isinstance(value, str) else json.dumps(value)


def _schema_keys(config: dict[str, Any]) -> list[str] | None:
    temperature = config.get("temperature")
    if temperature is not None and not (
        isinstance(temperature, int | float) and 0 <= temperature <= 2
    ):
        raise Invalid(
            "* GenerateContentRequest.generation_config.temperature: temperature must be "
            f"between 0.0 and 2.0, got {temperature}"
        )
    schema, json_schema = _get(config, "responseSchema"), _get(config, "responseJsonSchema")
    if schema is not None and json_schema is not None:
        raise Invalid(
            "* GenerateContentRequest.generation_config: response_schema and "
            "response_json_schema cannot both be set; use only one."
        )
    given = schema if schema is not None else json_schema
    if given is None or _get(config, "responseMimeType") != "application/json":
        return None
    return list((given.get("properties") or {}).keys())


def _parts(reply: str | list[ToolCall]) -> list[dict[str, Any]]:
    if isinstance(reply, str):
        return [{"text": reply}]
    return [{"functionCall": {"name": c.name, "args": json.loads(c.arguments)}} for c in reply]


def _reply(model: str, parts: list[dict[str, Any]], final: bool) -> dict[str, Any]:
    """A GenerateContentResponse; until the final one, usage has only the prompt's count."""
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    usage: dict[str, Any] = {"promptTokenCount": PROMPT_TOKENS, "totalTokenCount": PROMPT_TOKENS}
    if final:
        candidate["finishReason"] = "STOP"
        usage = {
            "promptTokenCount": PROMPT_TOKENS,
            "candidatesTokenCount": COMPLETION_TOKENS,
            "totalTokenCount": PROMPT_TOKENS + COMPLETION_TOKENS,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": PROMPT_TOKENS}],
        }
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": RESPONSE_ID,
    }


async def _event(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(data).encode() + b"\r\n\r\n")


def _status(code: int, message: str | None = None) -> dict[str, Any]:
    """A google.rpc.Status error body."""
    error: dict[str, Any] = {
        "code": code,
        "message": message or f"Upstream says {code}.",
        "status": STATUSES.get(code, "UNKNOWN"),
    }
    if code == 429:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaMetric": "generate_content_requests", "quotaId": "fake"}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
        ]
    return {"error": error}


def _error(code: int, message: str | None = None) -> web.Response:
    return web.json_response(_status(code, message), status=code)


def _get(obj: dict[str, Any], camel: str) -> Any:
    """A field by its camelCase name, or by the snake_case one, which proto3 JSON also parses."""
    value = obj.get(camel)
    return value if value is not None else obj.get(re.sub("([A-Z])", r"_\1", camel).lower())


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)
