"""Building OpenAI-shaped replies and chunks, and folding a chunk stream back into a whole reply.

Adapters that translate (rather than relay) build their output here, so that
every backend emits the same shapes, and a streamed answer reassembles to
exactly what the whole answer would have been.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from .schemas import JSONObject


def completion_id(prefix: str = "chatcmpl") -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def tool_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def usage(
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cached_tokens: int | None = None,
    reasoning_tokens: int | None = None,
) -> JSONObject:
    """OpenAI's usage object. Cached tokens are part of the prompt tokens and reasoning
    tokens part of the completion tokens, as in OpenAI's own counts."""
    counts: JSONObject = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached_tokens is not None:
        counts["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    if reasoning_tokens is not None:
        counts["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return counts


def chat_completion(
    model: str,
    text: str,
    tool_calls: list[JSONObject],
    finish_reason: str,
    usage: JSONObject | None,
    reply_id: str | None = None,
) -> JSONObject:
    """A whole one-choice ``chat.completion``, as translating adapters build it. As in
    OpenAI's replies, the content of an answer that is only tool calls is null."""
    content = text if text or not tool_calls else None
    message: JSONObject = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    reply: JSONObject = {
        "id": reply_id or completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
    }
    if usage is not None:
        reply["usage"] = usage
    return reply


def function_call(call_id: str, name: str, arguments: str) -> JSONObject:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


class ChunkFactory:
    """Makes the chunks of one streamed chat completion, sharing its id, time and model."""

    def __init__(self, model: str, kind: str = "chat.completion.chunk") -> None:
        self.id = completion_id("chatcmpl" if kind.startswith("chat") else "cmpl")
        self.created = int(time.time())
        self.model = model
        self.kind = kind

    def chunk(self, choices: list[JSONObject], usage: JSONObject | None = None) -> JSONObject:
        chunk: JSONObject = {
            "id": self.id,
            "object": self.kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return chunk

    def delta(self, index: int, delta: JSONObject, finish_reason: str | None = None) -> JSONObject:
        return self.chunk(
            [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        )

    def text(self, index: int, text: str, finish_reason: str | None = None) -> JSONObject:
        """A legacy text-completion chunk."""
        return self.chunk(
            [{"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}]
        )


class StreamBuilder:
    """The OpenAI chunks of one translated stream, with the state translation needs.

    It sends the assistant role with the first delta, numbers tool calls from 0
    in the order they start (whatever index space the upstream uses), and holds
    the finish reason and usage until the upstream's stream ends. The chunks it
    builds wait until ``take`` hands them on. Text deltas that wait together
    become one chunk: they would leave in the same write anyway, and each chunk
    costs the gateway as much as its text.
    """

    def __init__(self, model: str) -> None:
        self.factory = ChunkFactory(model)
        self.started = False
        self.tool_calls = 0
        self.finish_reason: str | None = None
        self.usage: JSONObject | None = None
        self._chunks: list[JSONObject] = []
        self._text: list[str] = []

    @property
    def model(self) -> str:
        return self.factory.model

    @property
    def ready(self) -> bool:
        """Whether anything waits for ``take``."""
        return bool(self._chunks or self._text)

    def take(self) -> list[JSONObject]:
        """The chunks built since the last call."""
        self._flush_text()
        chunks, self._chunks = self._chunks, []
        return chunks

    def _flush_text(self) -> None:
        if self._text:
            self._append({"content": "".join(self._text)})
            self._text.clear()

    def _delta(self, delta: JSONObject) -> None:
        self._flush_text()
        self._append(delta)

    def _append(self, delta: JSONObject) -> None:
        if not self.started:
            self.started = True
            delta = {"role": "assistant", **delta}
        self._chunks.append(self.factory.delta(0, delta))

    def start(self) -> None:
        """The first chunk, with the role alone as in OpenAI's streams, unless a delta has
        already gone with it."""
        if not self.started:
            self._append({"content": ""})

    def text(self, text: str) -> None:
        self._text.append(text)

    def tool_call(self, call_id: str, name: str, arguments: str = "") -> int:
        """Start a tool call; returns its OpenAI index."""
        index = self.tool_calls
        self.tool_calls += 1
        self._delta({"tool_calls": [{"index": index, **function_call(call_id, name, arguments)}]})
        return index

    def tool_arguments(self, index: int, fragment: str) -> None:
        self._delta({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})

    def end(self, with_usage: bool) -> list[JSONObject]:
        """The last chunks: any not yet taken, the finish reason, then usage when the client
        asked for it."""
        self.start()
        reason = self.finish_reason or ("tool_calls" if self.tool_calls else "stop")
        self._flush_text()
        self._chunks.append(self.factory.delta(0, {}, reason))
        if with_usage and self.usage is not None:
            self._chunks.append(self.factory.chunk([], self.usage))
        return self.take()


class ChatAccumulator:
    """Folds ``chat.completion.chunk`` dicts into one ``chat.completion``.

    Tool-call argument fragments are concatenated per ``index``, content per
    choice, and the usage chunk (if any) becomes the reply's usage.
    """

    def __init__(self) -> None:
        self.head: JSONObject = {}
        self.choices: dict[int, JSONObject] = {}
        self.usage: JSONObject | None = None

    def add(self, chunk: JSONObject) -> None:
        if not self.head:
            self.head = {k: chunk[k] for k in ("id", "created", "model") if k in chunk}
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for part in chunk.get("choices") or ():
            choice = self.choices.setdefault(
                part.get("index", 0),
                {"content": None, "refusal": None, "tool_calls": {}, "finish_reason": None},
            )
            delta = part.get("delta") or {}
            for key in ("content", "refusal"):
                if delta.get(key):
                    choice[key] = (choice[key] or "") + delta[key]
            for call in delta.get("tool_calls") or ():
                _merge_tool_call(choice["tool_calls"], call)
            if part.get("finish_reason"):
                choice["finish_reason"] = part["finish_reason"]

    def result(self) -> JSONObject:
        choices = []
        for index in sorted(self.choices):
            choice = self.choices[index]
            message: JSONObject = {
                "role": "assistant",
                "content": choice["content"],
                "refusal": choice["refusal"],
            }
            if choice["tool_calls"]:
                message["tool_calls"] = [
                    choice["tool_calls"][i] for i in sorted(choice["tool_calls"])
                ]
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": choice["finish_reason"] or "stop",
                }
            )
        reply: JSONObject = {
            "id": self.head.get("id") or completion_id(),
            "object": "chat.completion",
            "created": self.head.get("created") or int(time.time()),
            "model": self.head.get("model", ""),
            "choices": choices,
        }
        if self.usage is not None:
            reply["usage"] = self.usage
        return reply


def _merge_tool_call(calls: dict[int, JSONObject], fragment: JSONObject) -> None:
    index = fragment.get("index", 0)
    call = calls.setdefault(
        index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
    )
    if fragment.get("id"):
        call["id"] = fragment["id"]
    function: dict[str, Any] = fragment.get("function") or {}
    if function.get("name"):
        call["function"]["name"] += function["name"]
    if function.get("arguments"):
        call["function"]["arguments"] += function["arguments"]


def replay(reply: JSONObject, with_usage: bool) -> list[JSONObject]:
    """A whole ``chat.completion`` as the chunks of a stream that would fold back into it."""
    factory = ChunkFactory(reply.get("model", ""))
    chunks: list[JSONObject] = []
    for choice in reply.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        delta: JSONObject = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {"index": i, **call} for i, call in enumerate(message["tool_calls"])
            ]
        chunks.append(factory.delta(index, delta))
        chunks.append(factory.delta(index, {}, choice.get("finish_reason") or "stop"))
    if with_usage and reply.get("usage"):
        chunks.append(factory.chunk([], reply["usage"]))
    return chunks
