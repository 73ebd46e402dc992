"""The inbound Anthropic API: a Messages request becomes the canonical chat request any
provider serves, and the OpenAI-shaped reply or chunk stream becomes Anthropic's
message or event sequence.

So the unmodified ``anthropic`` SDK works against every configured model,
OpenAI-compatible and local ones included.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from .errors import INTERNAL_MESSAGE, InvalidRequest, RelayError, UnsupportedParameter
from .schemas import ChatCompletionRequest, JSONObject
from .schemas.messages import AnthropicMessage, MessagesRequest
from .streaming import Framing

WHERE = "the gateway's Anthropic API"
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


# -- requests --------------------------------------------------------------------------------


def chat_request(body: MessagesRequest) -> ChatCompletionRequest:
    """The canonical chat request for an Anthropic Messages request."""
    if body.thinking and body.thinking.get("type") != "disabled":
        raise UnsupportedParameter("thinking", WHERE)
    messages: list[JSONObject] = []
    if body.system:
        messages.append({"role": "system", "content": _text(body.system)})
    for message in body.messages:
        messages.extend(_messages(message))
    chat: JSONObject = {"model": body.model, "messages": messages, "max_tokens": body.max_tokens}
    for field in ("temperature", "top_p", "top_k"):
        if getattr(body, field) is not None:
            chat[field] = getattr(body, field)
    if body.stop_sequences:
        chat["stop"] = body.stop_sequences
    if body.metadata and body.metadata.get("user_id"):
        chat["user"] = body.metadata["user_id"]
    if body.tools:
        chat["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    **({"description": tool.description} if tool.description else {}),
                    "parameters": tool.input_schema,
                },
            }
            for tool in body.tools
        ]
        _tool_choice(body.tool_choice or {"type": "auto"}, chat)
    schema = ((body.output_config or {}).get("format") or {}).get("schema")
    if schema is not None:
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema},
        }
    if body.stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # message_delta needs the counts
    return ChatCompletionRequest.model_validate(chat)


def _tool_choice(choice: JSONObject, chat: JSONObject) -> None:
    kind = choice.get("type")
    if kind == "tool":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif kind in ("auto", "any", "none"):
        chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    else:
        raise InvalidRequest("'tool_choice.type' must be auto, any, tool or none.")
    if "disable_parallel_tool_use" in choice:
        chat["parallel_tool_calls"] = not choice["disable_parallel_tool_use"]


def _messages(message: AnthropicMessage) -> list[JSONObject]:
    """One Anthropic turn as OpenAI messages: tool results become ``tool`` messages first."""
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    results: list[JSONObject] = []
    parts: list[JSONObject] = []
    calls: list[JSONObject] = []
    for block in message.content:
        kind = block.get("type")
        if kind == "tool_result":
            results.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id"),
                    "content": _text(block.get("content") or ""),
                }
            )
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block)}})
        elif kind == "document":
            parts.append(_document(block))
        elif kind in ("thinking", "redacted_thinking"):
            continue  # only Anthropic upstreams could use them, and they need the signature
        else:
            raise UnsupportedParameter(
                f"messages[].content[].{kind}", "the gateway's Anthropic API"
            )
    turn: list[JSONObject] = list(results)
    if message.role == "assistant":
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        assistant: JSONObject = {"role": "assistant", "content": text or None}
        if calls:
            assistant["tool_calls"] = calls
        if text or calls:
            turn.append(assistant)
    elif parts:
        turn.append({"role": "user", "content": parts})
    return turn


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content if b.get("type") == "text")


def _image_url(block: JSONObject) -> str:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if source.get("type") == "url":
        return str(source.get("url"))
    raise InvalidRequest("An image block's source must be base64 or url.", param="messages")


def _document(block: JSONObject) -> JSONObject:
    source = block.get("source") or {}
    if source.get("type") != "base64" or source.get("media_type") != "application/pdf":
        raise UnsupportedParameter("messages[].content[].document", WHERE)
    data = f"data:application/pdf;base64,{source.get('data')}"
    return {"type": "file", "file": {"filename": "document.pdf", "file_data": data}}


# -- replies ---------------------------------------------------------------------------------


def message(reply: JSONObject, model: str) -> JSONObject:
    """The Anthropic ``Message`` for a whole OpenAI ``chat.completion``."""
    choice = reply["choices"][0]
    answer = choice.get("message") or {}
    content: list[JSONObject] = []
    if answer.get("content"):
        content.append({"type": "text", "text": answer["content"]})
    for call in answer.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": _arguments(function.get("arguments")),
            }
        )
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": _usage(reply.get("usage")),
    }


def _arguments(arguments: Any) -> Any:
    try:
        return orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}


def _usage(counts: JSONObject | None) -> JSONObject:
    """Anthropic's usage, whose input count leaves out cached tokens."""
    counts = counts or {}
    cached = (counts.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return {
        "input_tokens": (counts.get("prompt_tokens") or 0) - cached,
        "output_tokens": counts.get("completion_tokens") or 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def error_body(exc: RelayError) -> JSONObject:
    kind = ERROR_TYPES.get(exc.status_code, "api_error")
    return {"type": "error", "error": {"type": kind, "message": exc.message}}


def event(name: str, data: JSONObject) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class Events(Framing):
    """Anthropic's event sequence for one stream, built from OpenAI chunks."""

    def __init__(self, model: str) -> None:
        super().__init__(closing=b"")
        self.model = model
        self.block = -1  # the index of the open content block, if any
        self.open: str | None = None  # its type
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool-call index -> block index
        self.finish = "stop"
        self.usage: JSONObject | None = None

    def first(self, batch: list[JSONObject]) -> bytes:
        head: JSONObject = {
            "id": message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        start = event("message_start", {"type": "message_start", "message": head})
        return start + event("ping", {"type": "ping"}) + self.batch(batch)

    def batch(self, batch: list[JSONObject]) -> bytes:
        out = bytearray()
        for chunk in batch:
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    out += self._text(delta["content"])
                for call in delta.get("tool_calls") or ():
                    out += self._tool(call)
                if choice.get("finish_reason"):
                    self.finish = choice["finish_reason"]
        return bytes(out)

    def _open(self, kind: str, block: JSONObject) -> bytes:
        out = self._close()
        self.block += 1
        self.open = kind
        start = {"type": "content_block_start", "index": self.block, "content_block": block}
        return out + event("content_block_start", start)

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return event("content_block_stop", {"type": "content_block_stop", "index": self.block})

    def _text(self, text: str) -> bytes:
        out = b"" if self.open == "text" else self._open("text", {"type": "text", "text": ""})
        delta = {"type": "text_delta", "text": text}
        return out + self._delta(delta)

    def _tool(self, call: JSONObject) -> bytes:
        function = call.get("function") or {}
        out = b""
        if call.get("id"):
            block = {
                "type": "tool_use",
                "id": call["id"],
                "name": function.get("name"),
                "input": {},
            }
            out = self._open("tool_use", block)
            self.tool_blocks[call.get("index", 0)] = self.block
        if function.get("arguments"):
            if self.tool_blocks.get(call.get("index", 0)) != self.block:
                raise InvalidRequest("Tool-call fragments arrived out of order.")
            out += self._delta({"type": "input_json_delta", "partial_json": function["arguments"]})
        return out

    def _delta(self, delta: JSONObject) -> bytes:
        data = {"type": "content_block_delta", "index": self.block, "delta": delta}
        return event("content_block_delta", data)

    def failed(self, exc: Exception) -> bytes:
        relay = exc if isinstance(exc, RelayError) else RelayError(INTERNAL_MESSAGE)
        return event("error", error_body(relay))

    def end(self) -> bytes:
        usage = _usage(self.usage)
        tail = {
            "type": "message_delta",
            "delta": {
                "stop_reason": STOP_REASONS.get(self.finish, "end_turn"),
                "stop_sequence": None,
            },
            "usage": {
                "output_tokens": usage["output_tokens"],
                "input_tokens": usage["input_tokens"],
            },
        }
        return (
            self._close()
            + event("message_delta", tail)
            + event("message_stop", {"type": "message_stop"})
        )
