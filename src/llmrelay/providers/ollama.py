"""Ollama's native ``/api/chat``, translated both ways.

Sampling fields move into ``options``, content becomes one string per message with
images beside it as bare base64, and tool arguments travel as objects. Tool calls
come back whole and without ids, so ids are minted and each call is streamed as one
delta; a stream ends with its ``done: true`` line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field

from ..chunks import StreamBuilder, chat_completion, function_call, tool_call_id, usage
from ..errors import UnsupportedParameter
from ..images import Image
from ..schemas import ChatCompletionRequest, JSONObject, Message
from ..schemas.chat import AudioPart, ImagePart, RefusalPart, TextPart
from ..streaming import NDJSONDecoder
from . import canonical
from .translating import StreamTranslator, TranslatingProvider, TranslatingSpec

WHERE = "the 'ollama' provider"
# OpenAI's sampling fields and the Modelfile parameters that ``options`` takes for them.
OPTIONS = (
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("top_k", "top_k"),
    ("min_p", "min_p"),
    ("seed", "seed"),
    ("presence_penalty", "presence_penalty"),
    ("frequency_penalty", "frequency_penalty"),
    ("repetition_penalty", "repeat_penalty"),
)


class OllamaSpec(TranslatingSpec):
    default_key_env = None
    key_required = False

    provider: Literal["ollama"]
    base_url: str = Field(
        default="http://localhost:11434", description="The root the Ollama SDK takes."
    )


class OllamaProvider(TranslatingProvider):
    spec_type = OllamaSpec
    owned_by = "ollama"
    billed = False
    spec: OllamaSpec
    decoder = NDJSONDecoder
    # /api/chat answers one choice, has no per-user field, and its logprobs have
    # a shape of their own that nothing here translates yet.
    unsupported: ClassVar[frozenset[str]] = frozenset(
        {"n", "user", "logprobs", "top_logprobs", "logit_bias"}
    )

    # The inherited auth (a Bearer header only when a key is configured) and error
    # mapping (``upstream_error`` reads Ollama's ``{"error": "..."}``) fit as they are.

    def url(self, stream: bool) -> str:
        return f"{self.root}/api/chat"

    def native_request(
        self, request: ChatCompletionRequest, images: dict[str, Image], stream: bool
    ) -> JSONObject:
        extras = canonical.extras(request, self.unsupported)
        names = canonical.tool_names(request)
        native: JSONObject = {
            **extras,
            "model": self.spec.upstream_model,
            "messages": [_message(m, images, names) for m in request.messages],
            # Ollama streams unless told otherwise, so the choice is always spelled out.
            "stream": stream,
        }
        options = _options(request)
        if isinstance(extras.get("options"), dict):
            options = {**extras["options"], **options}  # a client's own Modelfile parameters
        if options:
            native["options"] = options
        self._tools(request, native)
        schema = canonical.json_schema(request)
        if schema is not None:
            native["format"] = schema or "json"  # {} means json_object: any JSON at all
        return native

    def _tools(self, request: ChatCompletionRequest, native: JSONObject) -> None:
        functions = canonical.functions(request, WHERE)
        choice = canonical.tool_choice(request)
        # Ollama has no tool_choice: "none" is met by declaring no tools, and nothing
        # can force a call, so forcing one is refused rather than silently ignored.
        if not functions or choice.mode == "none":
            return
        if choice.mode != "auto":
            self.refuse("tool_choice")
        self.refuse_serial_tool_calls(request)
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

    def reply(self, native: JSONObject) -> JSONObject:
        message = native.get("message") or {}
        calls = [function_call(*_call(call)) for call in message.get("tool_calls") or ()]
        return chat_completion(
            self.name,
            message.get("content") or "",
            calls,
            _finish(native.get("done_reason"), bool(calls)),
            _usage(native),
        )

    def translator(self, builder: StreamBuilder) -> StreamTranslator:
        return _Stream(builder, self)


class _Stream(StreamTranslator):
    def feed(self, data: JSONObject) -> None:
        if "error" in data:
            # An error after the 200 has no status of its own: the upstream failed.
            raise self.provider.error(502, orjson.dumps(data), {})
        message = data.get("message") or {}
        if message.get("content"):
            self.out.text(message["content"])
        for call in message.get("tool_calls") or ():
            # A call arrives whole: its opening delta carries all of its arguments.
            self.out.tool_call(*_call(call))
        if data.get("done"):
            self.out.finish_reason = _finish(data.get("done_reason"), self.out.tool_calls > 0)
            self.out.usage = _usage(data)
            self.finished = True


def _finish(done_reason: Any, called: bool) -> str:
    """OpenAI's finish reason: Ollama says "stop" even when it called tools."""
    if done_reason == "length":
        return "length"
    return "tool_calls" if called else "stop"


def _usage(native: Mapping[str, Any]) -> JSONObject:
    """OpenAI's usage from Ollama's metrics, which are left out when they are zero."""
    return usage(native.get("prompt_eval_count") or 0, native.get("eval_count") or 0)


def _call(call: JSONObject) -> tuple[str, str, str]:
    """A tool call's id (minted when Ollama gives none), name and arguments as JSON text."""
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments or {}).decode()
    return call.get("id") or tool_call_id(), function.get("name", ""), arguments


def _options(request: ChatCompletionRequest) -> JSONObject:
    options: JSONObject = {
        theirs: getattr(request, ours)
        for ours, theirs in OPTIONS
        if getattr(request, ours) is not None
    }
    if request.token_limit is not None:
        options["num_predict"] = request.token_limit
    if request.stop is not None:
        options["stop"] = request.stop_list()
    return options


def _message(message: Message, images: dict[str, Image], names: dict[str, str]) -> JSONObject:
    if message.role in ("tool", "function"):
        # Ollama matches a result to its call by the function's name, not an id.
        name = names.get(message.tool_call_id or "") or message.name
        return {"role": "tool", "content": message.text(), **({"tool_name": name} if name else {})}
    role = "system" if message.role in canonical.SYSTEM_ROLES else message.role
    text: list[str] = []
    pictures: list[str] = []
    for part in canonical.parts(message):
        if isinstance(part, TextPart):
            text.append(part.text)
        elif isinstance(part, RefusalPart):
            text.append(part.refusal)
        elif isinstance(part, ImagePart):
            pictures.append(images[part.image_url.url].data)
        else:
            kind = "input_audio" if isinstance(part, AudioPart) else "file"
            raise UnsupportedParameter(f"messages[].content[].{kind}", WHERE)
    native: JSONObject = {"role": role, "content": "".join(text)}
    if pictures:
        native["images"] = pictures
    if message.tool_calls:
        native["tool_calls"] = [
            {"function": {"name": call.function.name, "arguments": canonical.arguments(call)}}
            for call in message.tool_calls
        ]
    return native
