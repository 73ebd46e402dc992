"""Cohere's v2 Chat API, translated both ways.

Cohere's messages are close to OpenAI's (roles, tool calls with string arguments,
tool results by call id), so the translation is mostly renaming: ``top_p`` is ``p``,
``top_k`` is ``k``, ``stop`` is ``stop_sequences``, a tool choice is ``REQUIRED`` or
``NONE``. Streamed tool calls are numbered by their own count rather than Cohere's
content-block index, which the tool plan and text share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field

from ..chunks import StreamBuilder, chat_completion, function_call, tool_call_id, usage
from ..errors import InvalidRequest, UnsupportedParameter, UpstreamError, upstream_error
from ..images import Image
from ..schemas import ChatCompletionRequest, JSONObject, Message
from ..schemas.chat import ImagePart, RefusalPart, TextPart
from . import canonical
from .translating import StreamTranslator, TranslatingProvider, TranslatingSpec

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
# Finish reasons that mean the reply failed, and the status each becomes.
FAILURES = {"ERROR": 502, "TIMEOUT": 504}
WHERE = "the 'cohere' provider"


class CohereSpec(TranslatingSpec):
    default_key_env = "CO_API_KEY"
    key_required = True

    provider: Literal["cohere"]
    base_url: str = Field(
        default="https://api.cohere.com", description="The root the Cohere SDK takes."
    )


class CohereProvider(TranslatingProvider):
    spec_type = CohereSpec
    owned_by = "cohere"
    spec: CohereSpec
    unsupported: ClassVar[frozenset[str]] = frozenset(
        {
            "n",
            "user",
            # Cohere's logprobs are per span of token ids, not OpenAI's per-token shape.
            "logprobs",
            "top_logprobs",
            "logit_bias",
            "min_p",
            "repetition_penalty",
        }
    )

    def url(self, stream: bool) -> str:
        return f"{self.root}/v2/chat"

    def error(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        if status == 498:  # Cohere's "invalid token": the gateway's key, as a 401 would be
            status = 401
        return upstream_error(status, body, headers, self.secrets)

    def failure(self, reason: str, message: str | None) -> UpstreamError:
        """The error for a reply that Cohere ended with ERROR or TIMEOUT, after its 200."""
        body = {"message": message or f"The upstream's reply ended with {reason}."}
        return self.error(FAILURES[reason], orjson.dumps(body), {})

    def native_request(
        self, request: ChatCompletionRequest, images: dict[str, Image], stream: bool
    ) -> JSONObject:
        native: JSONObject = {
            **canonical.extras(request, self.unsupported),
            "model": self.spec.upstream_model,
            "messages": [_message(message, images) for message in request.messages],
        }
        sampling = (
            ("temperature", request.temperature),
            ("p", request.top_p),
            ("k", request.top_k),
            ("max_tokens", request.token_limit),
            ("seed", request.seed),
            ("frequency_penalty", request.frequency_penalty),
            ("presence_penalty", request.presence_penalty),
        )
        native.update((key, value) for key, value in sampling if value is not None)
        if request.stop is not None:
            native["stop_sequences"] = request.stop_list()
        self._tools(request, native)
        schema = canonical.json_schema(request)
        if schema is not None:
            if native.get("tools"):
                raise InvalidRequest(
                    f"'response_format' cannot be combined with 'tools' on {WHERE}.",
                    param="response_format",
                )
            native["response_format"] = {"type": "json_object"}
            if schema:
                native["response_format"]["json_schema"] = schema
        if stream:
            native["stream"] = True
        return native

    def _tools(self, request: ChatCompletionRequest, native: JSONObject) -> None:
        functions = canonical.functions(request, WHERE)
        if not functions:
            return
        self.refuse_serial_tool_calls(request)
        choice = canonical.tool_choice(request)
        if choice.mode == "function":
            # Cohere cannot name a tool, but offered only that one, REQUIRED has to call it.
            functions = [f for f in functions if f.name == choice.name]
            choice = canonical.Choice("required")
        native["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": f.name,
                    **({"description": f.description} if f.description else {}),
                    "parameters": f.parameters or {"type": "object", "properties": {}},
                },
            }
            for f in functions
        ]
        # Cohere's strictness is one switch for every tool.
        if any(f.strict for f in functions):
            native["strict_tools"] = True
        if choice.mode in ("required", "none"):
            native["tool_choice"] = choice.mode.upper()

    def reply(self, native: JSONObject) -> JSONObject:
        reason = native.get("finish_reason") or "COMPLETE"
        message = native.get("message") or {}
        if reason in FAILURES:
            raise self.failure(reason, None)
        text = [
            part.get("text") or ""
            for part in message.get("content") or ()
            if part.get("type") == "text"
        ]
        calls = [
            function_call(
                call.get("id") or tool_call_id(),
                call["function"]["name"],
                call["function"].get("arguments") or "{}",
            )
            for call in message.get("tool_calls") or ()
        ]
        return chat_completion(
            self.name,
            "".join(text),
            calls,
            _finish(reason, bool(calls)),
            _usage(native.get("usage") or {}),
            reply_id=native.get("id"),
        )

    def translator(self, builder: StreamBuilder) -> StreamTranslator:
        return _Stream(builder, self)


class _Stream(StreamTranslator):
    provider: CohereProvider

    def __init__(self, builder: StreamBuilder, provider: CohereProvider) -> None:
        super().__init__(builder, provider)
        # Cohere's content-block index -> OpenAI's tool-call index.
        self.tool_index: dict[int, int] = {}

    def feed(self, data: JSONObject) -> None:
        if self.finished:
            return  # what may trail message-end
        kind = data.get("type")
        message = (data.get("delta") or {}).get("message") or {}
        if kind == "content-delta":
            # Thinking arrives as content.thinking, which is not the answer's text.
            text = (message.get("content") or {}).get("text")
            if text:
                self.out.text(text)
        elif kind == "tool-call-start":
            call = message.get("tool_calls") or {}
            function = call.get("function") or {}
            self.tool_index[data.get("index", -1)] = self.out.tool_call(
                call.get("id") or tool_call_id(), function["name"], function.get("arguments") or ""
            )
        elif kind == "tool-call-delta":
            fragment = ((message.get("tool_calls") or {}).get("function") or {}).get("arguments")
            if fragment:
                index = self.tool_index.get(data.get("index", -1), self.out.tool_calls - 1)
                self.out.tool_arguments(index, fragment)
        elif kind == "message-end":
            self._end(data.get("delta") or {})
        # starts and ends of blocks, tool plans, citations and debug build nothing

    def _end(self, delta: JSONObject) -> None:
        reason = delta.get("finish_reason") or "COMPLETE"
        if reason in FAILURES:
            raise self.provider.failure(reason, delta.get("error"))
        self.out.finish_reason = _finish(reason, bool(self.out.tool_calls))
        self.out.usage = _usage(delta.get("usage") or {})
        self.finished = True


def _finish(reason: str, called: bool) -> str:
    """OpenAI's finish reason; a turn that called tools says so whatever Cohere says."""
    mapped = FINISH_REASONS.get(reason, "stop")
    return "tool_calls" if called and mapped == "stop" else mapped


def _usage(counts: Mapping[str, Any]) -> JSONObject:
    """OpenAI's usage from Cohere's raw token counts, else its billed ones (both floats)."""
    tokens = counts.get("tokens") or counts.get("billed_units") or {}
    cached = counts.get("cached_tokens")
    return usage(
        int(tokens.get("input_tokens") or 0),
        int(tokens.get("output_tokens") or 0),
        cached_tokens=int(cached) if cached is not None else None,
    )


def _message(message: Message, images: dict[str, Image]) -> JSONObject:
    if message.role in canonical.SYSTEM_ROLES:
        return {"role": "system", "content": message.text()}
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text()}
    if message.role == "function":
        raise UnsupportedParameter("messages[].role 'function'", WHERE)
    native: JSONObject = {"role": message.role}
    if isinstance(message.content, str):
        native["content"] = message.content
    elif message.content is not None:
        native["content"] = [_part(part, images) for part in message.content]
    if message.tool_calls:
        native["tool_calls"] = [
            function_call(call.id, call.function.name, call.function.arguments)
            for call in message.tool_calls
        ]
        if not native.get("content"):
            native.pop("content", None)  # Cohere takes a call-only turn without content
    return native


def _part(part: Any, images: dict[str, Image]) -> JSONObject:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, RefusalPart):
        return {"type": "text", "text": part.refusal}
    if isinstance(part, ImagePart):
        image_url: JSONObject = {"url": images[part.image_url.url].data_url}
        if part.image_url.detail:
            image_url["detail"] = part.image_url.detail
        return {"type": "image_url", "image_url": image_url}
    kind = "input_audio" if part.type == "input_audio" else "file"
    raise UnsupportedParameter(f"messages[].content[].{kind}", WHERE)
