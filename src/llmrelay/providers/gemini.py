"""Google Gemini's generateContent, translated both ways.

System messages become ``systemInstruction``; the assistant is the ``model`` role;
tool calls are ``functionCall`` parts with object arguments and no ids, so ids are
minted here, and tool results go back as ``functionResponse`` parts matched by the
function's name. Streams are data-only SSE with no terminator: the chunk that carries
a finish reason is the last.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field

from ..chunks import StreamBuilder, chat_completion, function_call, tool_call_id, usage
from ..errors import InvalidRequest, UnsupportedParameter, UpstreamError, upstream_error
from ..images import Image
from ..schemas import ChatCompletionRequest, JSONObject, Message
from ..schemas.chat import AudioPart, FilePart, ImagePart, RefusalPart, TextPart
from ..schemas.common import json_object
from . import canonical
from .translating import StreamTranslator, TranslatingProvider, TranslatingSpec

# Reasons not listed (LANGUAGE, OTHER, MALFORMED_FUNCTION_CALL, ...) end the answer as "stop".
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **{
        reason: "content_filter"
        for reason in (
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
            "IMAGE_PROHIBITED_CONTENT",
            "IMAGE_RECITATION",
        )
    },
}
TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "function": "ANY"}
# OpenAI sampling fields and their generationConfig names.
SAMPLING = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
WHERE = "the 'gemini' provider"


class GeminiSpec(TranslatingSpec):
    default_key_env = "GEMINI_API_KEY"
    key_required = True

    provider: Literal["gemini"]
    base_url: str = Field(
        default="https://generativelanguage.googleapis.com",
        description="The root the Gemini SDK takes.",
    )


class GeminiProvider(TranslatingProvider):
    spec_type = GeminiSpec
    owned_by = "gemini"
    spec: GeminiSpec
    # n: the adapter answers one choice; logprobs: Gemini's differ in shape and are not
    # translated; user: Gemini has no end-user field.
    unsupported: ClassVar[frozenset[str]] = frozenset(
        {
            "n",
            "logprobs",
            "top_logprobs",
            "logit_bias",
            "min_p",
            "repetition_penalty",
            "user",
        }
    )

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.secrets[0]} if self.secrets else {}

    def url(self, stream: bool) -> str:
        model = f"{self.root}/v1beta/models/{self.spec.upstream_model}"
        # Without alt=sse Gemini streams one JSON array rather than events.
        return f"{model}:streamGenerateContent?alt=sse" if stream else f"{model}:generateContent"

    def error(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, list) and len(data) == 1:  # the array-streaming mode wraps it
            data = data[0]
            body = orjson.dumps(data)
        detail = data.get("error") if isinstance(data, dict) else None
        if not isinstance(detail, dict):
            return upstream_error(status, body, headers, self.secrets)
        details = [d for d in detail.get("details") or () if isinstance(d, dict)]
        if any(d.get("reason") == "API_KEY_INVALID" for d in details):
            # Gemini answers a bad key with a 400; it is the gateway's key, not the client's.
            status = 401
        mapped = upstream_error(status, body, headers, self.secrets)
        if mapped.code is None and isinstance(detail.get("status"), str):
            mapped.code = detail["status"].lower()
        delays = [_seconds(d.get("retryDelay")) for d in details]
        if any(delays) and not any(k.lower() == "retry-after" for k in mapped.headers):
            mapped.headers["retry-after"] = next(d for d in delays if d)
        return mapped

    def native_request(
        self, request: ChatCompletionRequest, images: dict[str, Image], stream: bool
    ) -> JSONObject:
        system, turns = canonical.split_system(request)
        native: JSONObject = {
            **canonical.extras(request, self.unsupported),
            "contents": _contents(turns, images, canonical.tool_names(request)),
        }
        if system:
            native["systemInstruction"] = {"parts": [{"text": text} for text in system]}
        # A client's own generationConfig (thinkingConfig, say) is kept and added to.
        config = native.get("generationConfig") or {}
        if not isinstance(config, dict):
            raise InvalidRequest("'generationConfig' must be an object.", param="generationConfig")
        config = dict(config)
        for ours, theirs in SAMPLING.items():
            if getattr(request, ours) is not None:
                config[theirs] = getattr(request, ours)
        if request.token_limit is not None:
            config["maxOutputTokens"] = request.token_limit
        if request.stop is not None:
            config["stopSequences"] = request.stop_list()
        schema = canonical.json_schema(request)
        if schema is not None:
            config["responseMimeType"] = "application/json"
            if schema:  # json_object asks for JSON without a schema
                config["responseJsonSchema"] = schema
        if config:
            native["generationConfig"] = config
        self._tools(request, native)
        return native

    def _tools(self, request: ChatCompletionRequest, native: JSONObject) -> None:
        functions = canonical.functions(request, WHERE)
        if not functions:
            return
        self.refuse_serial_tool_calls(request)
        declarations = [
            {
                "name": f.name,
                **({"description": f.description} if f.description else {}),
                # OpenAI's parameters are JSON Schema, which this field takes as is.
                **({"parametersJsonSchema": f.parameters} if f.parameters else {}),
            }
            for f in functions
        ]
        native["tools"] = [{"functionDeclarations": declarations}]
        choice = canonical.tool_choice(request)
        calling: JSONObject = {"mode": TOOL_MODES[choice.mode]}
        if choice.name:
            calling["allowedFunctionNames"] = [choice.name]
        native["toolConfig"] = {"functionCallingConfig": calling}

    def reply(self, native: JSONObject) -> JSONObject:
        text: list[str] = []
        calls: list[JSONObject] = []
        for part in _parts(native):
            if "functionCall" in part:
                call = part["functionCall"]
                calls.append(function_call(_call_id(call), call["name"], _arguments(call)))
            elif part.get("text") and not part.get("thought"):
                text.append(part["text"])
        return chat_completion(
            self.name,
            "".join(text),
            calls,
            _finish(native, bool(calls)) or "stop",
            _usage(native["usageMetadata"]) if native.get("usageMetadata") else None,
            reply_id=native.get("responseId"),
        )

    def translator(self, builder: StreamBuilder) -> StreamTranslator:
        return _Stream(builder, self)


class _Stream(StreamTranslator):
    def feed(self, data: JSONObject) -> None:
        if "error" in data:  # a google.rpc.Status after the 200
            error = data["error"]
            code = error.get("code") if isinstance(error, dict) else None
            status = code if isinstance(code, int) and 400 <= code < 600 else 502
            raise self.provider.error(status, orjson.dumps(data), {})
        if data.get("usageMetadata"):
            # A running count on every chunk: the last one is the whole answer's.
            self.out.usage = _usage(data["usageMetadata"])
        for part in _parts(data):
            if "functionCall" in part:
                # Calls arrive whole: the opening chunk carries all the arguments.
                call = part["functionCall"]
                self.out.tool_call(_call_id(call), call["name"], _arguments(call))
            elif part.get("text") and not part.get("thought"):
                self.out.text(part["text"])
        reason = _finish(data, self.out.tool_calls > 0)
        if reason is not None:
            # No sentinel follows: the body just closes after this chunk.
            self.out.finish_reason = reason
            self.finished = True


def _parts(native: JSONObject) -> list[JSONObject]:
    candidates = native.get("candidates") or [{}]
    return list((candidates[0].get("content") or {}).get("parts") or ())


def _finish(native: JSONObject, calls: bool) -> str | None:
    """OpenAI's finish reason for a response; None for a stream chunk that is not the last."""
    if (native.get("promptFeedback") or {}).get("blockReason"):
        return "content_filter"  # the prompt itself was refused, and no candidates come
    reason = ((native.get("candidates") or [{}])[0]).get("finishReason")
    if reason is None:
        return None
    mapped = FINISH_REASONS.get(reason, "stop")
    # Gemini has no tool-call reason: a turn of function calls ends with STOP.
    return "tool_calls" if calls and mapped == "stop" else mapped


def _seconds(delay: Any) -> str | None:
    """Whole seconds for retry-after from RetryInfo's protobuf Duration, such as "1.5s"."""
    try:
        return str(math.ceil(float(str(delay).removesuffix("s")))) if delay else None
    except ValueError:
        return None


def _call_id(call: JSONObject) -> str:
    """The upstream's id where it sent one; Gemini usually does not."""
    return str(call.get("id") or tool_call_id())


def _arguments(call: JSONObject) -> str:
    return orjson.dumps(call.get("args") or {}).decode()


def _usage(counts: Mapping[str, Any]) -> JSONObject:
    """OpenAI's usage from Gemini's, whose candidate count leaves out thinking tokens."""
    thoughts = counts.get("thoughtsTokenCount")
    return usage(
        counts.get("promptTokenCount") or 0,  # includes cachedContentTokenCount
        (counts.get("candidatesTokenCount") or 0) + (thoughts or 0),
        cached_tokens=counts.get("cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def _contents(
    turns: list[Message], images: dict[str, Image], names: dict[str, str]
) -> list[JSONObject]:
    turns_parts = [
        ("model" if m.role == "assistant" else "user", _message_parts(m, images, names))
        for m in turns
    ]
    # An empty assistant message is left out: Gemini refuses a turn with no parts.
    return canonical.alternating([turn for turn in turns_parts if turn[1]], "parts")


def _message_parts(
    message: Message, images: dict[str, Image], names: dict[str, str]
) -> list[JSONObject]:
    if message.role in ("tool", "function"):
        name = message.name if message.role == "function" else names.get(message.tool_call_id or "")
        if not name:
            raise InvalidRequest(
                f"The tool message for '{message.tool_call_id}' answers no tool call in the "
                f"conversation; {WHERE} matches results to calls by function name.",
                param="messages",
            )
        return [{"functionResponse": {"name": name, "response": _result(message.text())}}]
    parts = [_part(part, images) for part in canonical.parts(message)]
    for call in message.tool_calls or ():
        parts.append(
            {"functionCall": {"name": call.function.name, "args": canonical.arguments(call)}}
        )
    return parts


def _result(text: str) -> JSONObject:
    """A functionResponse's response, which must be an object: a JSON object result as is,
    anything else under "output"."""
    value = json_object(text)
    return value if value is not None else {"output": text}


def _part(part: Any, images: dict[str, Image]) -> JSONObject:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, RefusalPart):
        return {"text": part.refusal}
    if isinstance(part, ImagePart):
        image = images[part.image_url.url]
        return {"inlineData": {"mimeType": image.media_type, "data": image.data}}
    if isinstance(part, AudioPart) and part.input_audio.format in AUDIO_TYPES:
        mime = AUDIO_TYPES[part.input_audio.format]
        return {"inlineData": {"mimeType": mime, "data": part.input_audio.data}}
    if isinstance(part, FilePart):
        head, _, data = str(part.file.get("file_data", "")).partition(",")
        if head.startswith("data:") and head.endswith(";base64"):  # Gemini reads PDFs and more
            mime = head.removeprefix("data:").removesuffix(";base64")
            return {"inlineData": {"mimeType": mime, "data": data}}
    kind = "input_audio" if isinstance(part, AudioPart) else "file"
    raise UnsupportedParameter(f"messages[].content[].{kind}", WHERE)
