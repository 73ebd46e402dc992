"""Anthropic's Messages API, translated both ways.

System messages become the top-level ``system``; tool results become
``tool_result`` blocks at the head of a user turn; streamed content blocks
become OpenAI deltas, with tool calls numbered by their own count rather than
Anthropic's block index.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field

from ..chunks import StreamBuilder, chat_completion, function_call, usage
from ..errors import (
    InvalidRequest,
    UnsupportedParameter,
    UpstreamError,
    UpstreamMalformed,
    upstream_error,
)
from ..images import Image
from ..schemas import ChatCompletionRequest, JSONObject, Message
from ..schemas.chat import AudioPart, FilePart, ImagePart, RefusalPart, TextPart
from . import canonical
from .translating import StreamTranslator, TranslatingProvider, TranslatingSpec

VERSION = "2023-06-01"
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}
WHERE = "the 'anthropic' provider"


class AnthropicSpec(TranslatingSpec):
    default_key_env = "ANTHROPIC_API_KEY"
    key_required = True

    provider: Literal["anthropic"]
    base_url: str = Field(
        default="https://api.anthropic.com", description="The root the Anthropic SDK takes."
    )
    default_max_tokens: int = Field(
        default=4096,
        gt=0,
        description="Sent when a request sets no max_tokens; Anthropic needs one.",
    )


class AnthropicProvider(TranslatingProvider):
    spec_type = AnthropicSpec
    owned_by = "anthropic"
    spec: AnthropicSpec
    unsupported: ClassVar[frozenset[str]] = frozenset(
        {
            "n",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "logprobs",
            "top_logprobs",
            "logit_bias",
            "min_p",
            "repetition_penalty",
        }
    )

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": VERSION}
        if self.secrets:
            headers["x-api-key"] = self.secrets[0]
        return headers

    def url(self, stream: bool) -> str:
        return f"{self.root}/v1/messages"

    def error(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        if status == 529:  # Anthropic's "overloaded", which OpenAI clients know as 503
            mapped = upstream_error(503, body, headers, self.secrets)
            mapped.code = "overloaded"
            return mapped
        return upstream_error(status, body, headers, self.secrets)

    async def count_tokens(self, request: ChatCompletionRequest) -> int:
        native = self.native_request(request, await self.load_images(request), stream=False)
        del native["max_tokens"]
        body = await self.post(f"{self.root}/v1/messages/count_tokens", orjson.dumps(native))
        counted = orjson.loads(body)
        if not isinstance(counted, dict) or not isinstance(counted.get("input_tokens"), int):
            raise UpstreamMalformed(f"The upstream for '{self.name}' sent a malformed count.")
        return int(counted["input_tokens"])

    def native_request(
        self, request: ChatCompletionRequest, images: dict[str, Image], stream: bool
    ) -> JSONObject:
        system, turns = canonical.split_system(request)
        native: JSONObject = {
            **canonical.extras(request, self.unsupported),
            "model": self.spec.upstream_model,
            "max_tokens": request.token_limit or self.spec.default_max_tokens,
            "messages": _turns(turns, images),
        }
        if system:
            native["system"] = [{"type": "text", "text": text} for text in system]
        if request.temperature is not None:
            native["temperature"] = self._temperature(request.temperature)
        for ours, theirs in (("top_p", "top_p"), ("top_k", "top_k")):
            if getattr(request, ours) is not None:
                native[theirs] = getattr(request, ours)
        if request.stop is not None:
            native["stop_sequences"] = request.stop_list()
        if request.user is not None:
            native["metadata"] = {"user_id": request.user}
        self._tools(request, native)
        schema = canonical.json_schema(request)
        if schema is not None:
            native["output_config"] = {
                "format": {"type": "json_schema", "schema": schema or {"type": "object"}}
            }
        if stream:
            native["stream"] = True
        return native

    def _temperature(self, value: float) -> float:
        if value <= 1:
            return value
        if self.spec.drop_unsupported_params:
            return 1.0
        raise InvalidRequest(
            f"Invalid 'temperature': {WHERE} takes 0 to 1, not {value}.", param="temperature"
        )

    def _tools(self, request: ChatCompletionRequest, native: JSONObject) -> None:
        functions = canonical.functions(request, WHERE)
        if not functions:
            return
        native["tools"] = [
            {
                "name": f.name,
                **({"description": f.description} if f.description else {}),
                "input_schema": f.parameters or {"type": "object", "properties": {}},
            }
            for f in functions
        ]
        choice = canonical.tool_choice(request)
        kinds = {"auto": "auto", "required": "any", "none": "none", "function": "tool"}
        tool_choice: JSONObject = {"type": kinds[choice.mode]}
        if choice.name:
            tool_choice["name"] = choice.name
        if request.parallel_tool_calls is False and choice.mode != "none":
            tool_choice["disable_parallel_tool_use"] = True
        native["tool_choice"] = tool_choice

    def reply(self, native: JSONObject) -> JSONObject:
        text: list[str] = []
        calls: list[JSONObject] = []
        for block in native.get("content") or ():
            if block.get("type") == "text":
                text.append(block.get("text", ""))
            elif block.get("type") == "tool_use":
                arguments = orjson.dumps(block.get("input") or {}).decode()
                calls.append(function_call(block["id"], block["name"], arguments))
        finish = FINISH_REASONS.get(native.get("stop_reason") or "end_turn", "stop")
        return chat_completion(
            self.name,
            "".join(text),
            calls,
            finish,
            _usage(native.get("usage") or {}),
            reply_id=native.get("id"),
        )

    def translator(self, builder: StreamBuilder) -> StreamTranslator:
        return _Stream(builder, self)


class _Stream(StreamTranslator):
    def __init__(self, builder: StreamBuilder, provider: AnthropicProvider) -> None:
        super().__init__(builder, provider)
        self.counts: JSONObject = {}
        # Anthropic's block index -> OpenAI's tool-call index.
        self.tool_index: dict[int, int] = {}

    def feed(self, data: JSONObject) -> None:
        kind = data.get("type")
        if kind == "content_block_delta":  # by far the most frequent, so handled inline
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                self.out.text(delta["text"])
            elif delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                self.out.tool_arguments(self.tool_index[data["index"]], delta["partial_json"])
        elif kind == "message_start":
            self.counts.update((data.get("message") or {}).get("usage") or {})
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                self.tool_index[data["index"]] = self.out.tool_call(block["id"], block["name"])
        elif kind == "message_delta":
            self.counts.update(data.get("usage") or {})
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason:
                self.out.finish_reason = FINISH_REASONS.get(reason, "stop")
            self.out.usage = _usage(self.counts)
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            error = data.get("error") or {}
            status = 503 if error.get("type") == "overloaded_error" else 502
            raise self.provider.error(status, orjson.dumps(data), {})
        # ping, and event types added later, build nothing


def _usage(counts: Mapping[str, Any]) -> JSONObject:
    """OpenAI's usage from Anthropic's, whose input count leaves out cached tokens."""
    cached = counts.get("cache_read_input_tokens") or 0
    written = counts.get("cache_creation_input_tokens") or 0
    thinking = (counts.get("output_tokens_details") or {}).get("thinking_tokens")
    return usage(
        (counts.get("input_tokens") or 0) + cached + written,
        counts.get("output_tokens") or 0,
        cached_tokens=cached,
        reasoning_tokens=thinking,
    )


def _turns(turns: list[Message], images: dict[str, Image]) -> list[JSONObject]:
    return canonical.alternating(
        [("assistant" if m.role == "assistant" else "user", _blocks(m, images)) for m in turns],
        "content",
    )


def _blocks(message: Message, images: dict[str, Image]) -> list[JSONObject]:
    if message.role == "tool":
        return [
            {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.text()}
        ]
    blocks = [_block(part, images) for part in canonical.parts(message)]
    for call in message.tool_calls or ():
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": canonical.arguments(call),
            }
        )
    return blocks


def _block(part: Any, images: dict[str, Image]) -> JSONObject:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, RefusalPart):
        return {"type": "text", "text": part.refusal}
    if isinstance(part, ImagePart):
        image = images[part.image_url.url]
        source = {"type": "base64", "media_type": image.media_type, "data": image.data}
        return {"type": "image", "source": source}
    if isinstance(part, FilePart) and str(part.file.get("file_data", "")).startswith(
        "data:application/pdf;base64,"
    ):
        data = str(part.file["file_data"]).partition(",")[2]
        source = {"type": "base64", "media_type": "application/pdf", "data": data}
        return {"type": "document", "source": source}
    kind = "input_audio" if isinstance(part, AudioPart) else "file"
    raise UnsupportedParameter(f"messages[].content[].{kind}", WHERE)
