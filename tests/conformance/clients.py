"""The three clients of the matrix: the official ``openai`` and ``anthropic`` SDKs, and raw
SSE read by hand over httpx. Each turns an ``Ask`` into its own wire format and reads the
reply back into an ``Answer``, checking the stream's framing on the way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

import anthropic
import httpx
import openai

from ..fakes.scenario import function_tool
from .model import Answer, Ask, Assistant, Call, Failed, User

KEY = "sk-matrix-client"
ANTHROPIC_FINISH = {
    "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
}  # fmt: skip


class Client(Protocol):
    name: str

    def ask(self, model: str, ask: Ask) -> Answer: ...


# -- the OpenAI wire format ------------------------------------------------------------------


def openai_body(model: str, ask: Ask) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": ask.system}] * bool(ask.system)
    for message in ask.messages:
        if isinstance(message, User):
            content: Any = message.text
            if message.image:
                image = {"type": "image_url", "image_url": {"url": message.image}}
                content = [{"type": "text", "text": message.text}, image]
            messages.append({"role": "user", "content": content})
        elif isinstance(message, Assistant):
            turn: dict[str, Any] = {"role": "assistant", "content": message.text}
            if message.calls:
                turn["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in message.calls
                ]
            messages.append(turn)
        else:
            messages.append(
                {"role": "tool", "tool_call_id": message.call.id, "content": message.text}
            )
    body: dict[str, Any] = {
        "model": model, "messages": messages, "max_tokens": ask.max_tokens,
    }  # fmt: skip
    if ask.tools:
        body["tools"] = [function_tool(name) for name in ask.tools]
    if ask.tool_choice in ("auto", "required", "none"):
        body["tool_choice"] = ask.tool_choice
    elif ask.tool_choice:
        body["tool_choice"] = {"type": "function", "function": {"name": ask.tool_choice}}
    if ask.parallel is not None:
        body["parallel_tool_calls"] = ask.parallel
    if ask.schema is not None:
        json_schema = {"name": "answer", "schema": ask.schema}
        body["response_format"] = {"type": "json_schema", "json_schema": json_schema}
    if ask.stream:
        body["stream"] = True
        if ask.usage:
            body["stream_options"] = {"include_usage": True}
    return body


def openai_answer(reply: dict[str, Any]) -> Answer:
    assert reply["object"] == "chat.completion", reply
    choice = reply["choices"][0]
    message = choice["message"]
    calls = [
        Call(c["id"], c["function"]["name"], c["function"]["arguments"])
        for c in message.get("tool_calls") or ()
    ]
    usage = reply.get("usage")
    counts = (usage["prompt_tokens"], usage["completion_tokens"]) if usage else None
    return Answer(message.get("content") or "", calls, choice["finish_reason"], counts)


class OpenAIStream:
    """Chat-completion chunks reassembled as a client must, checking what it relies on."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: dict[int, Call] = {}
        self.finish: str | None = None
        self.usage: tuple[int, int] | None = None
        self.usage_reports = 0
        self.ids: set[str] = set()

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def add(self, chunk: dict[str, Any]) -> None:
        assert chunk["object"] == "chat.completion.chunk", chunk
        self.ids.add(chunk["id"])
        if chunk.get("usage"):
            assert chunk["choices"] == [], "usage comes in a chunk of its own"
            self.usage_reports += 1
            self.usage = (chunk["usage"]["prompt_tokens"], chunk["usage"]["completion_tokens"])
        for choice in chunk["choices"]:
            assert choice["index"] == 0
            delta = choice["delta"]
            self.texts.append(delta.get("content") or "")
            for fragment in delta.get("tool_calls") or ():
                function = fragment.get("function") or {}
                index = fragment["index"]
                if index not in self.calls:
                    assert fragment.get("id") and function.get("name"), (
                        "a call opens with id and name"
                    )
                    self.calls[index] = Call(fragment["id"], function["name"], "")
                self.calls[index].arguments += function.get("arguments") or ""
            self.finish = choice.get("finish_reason") or self.finish

    def answer(self) -> Answer:
        assert len(self.ids) == 1, "every chunk of a reply carries the same id"
        assert sorted(self.calls) == list(range(len(self.calls))), "calls are indexed from 0"
        assert self.finish, "the stream names a finish reason"
        calls = [self.calls[i] for i in sorted(self.calls)]
        return Answer(self.text, calls, self.finish, self.usage, self.usage_reports)


class OpenAISDK:
    name = "openai SDK"

    def __init__(self, url: str) -> None:
        self.client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=120)

    def ask(self, model: str, ask: Ask) -> Answer:
        body = openai_body(model, ask)
        try:
            if not ask.stream:
                return openai_answer(self.client.chat.completions.create(**body).model_dump())
            stream = OpenAIStream()
            try:
                for chunk in self.client.chat.completions.create(**body):
                    stream.add(chunk.model_dump())
            except openai.APIStatusError:
                raise
            except openai.APIError as error:  # an error event after the 200
                raise Failed(200, error.type, error.message, partial=stream.text) from error
            return stream.answer()
        except openai.APIStatusError as error:
            detail = error.body if isinstance(error.body, dict) else {}
            raise Failed(
                error.status_code,
                detail.get("type"),
                detail.get("message", ""),
                detail.get("param"),
                error.response.headers.get("retry-after"),
            ) from error


def sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The data of each server-sent event, as the SSE spec frames it."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        else:
            assert line.startswith((":", "event:", "id:", "retry:")), f"not SSE: {line!r}"
    assert not data, "the last event is closed by a blank line"


def http_failure(response: httpx.Response) -> Failed:
    detail = response.json()["error"]
    kind = detail.get("type")
    return Failed(
        response.status_code,
        kind,
        detail.get("message", ""),
        detail.get("param"),
        response.headers.get("retry-after"),
    )


class RawSSE:
    name = "raw SSE (httpx)"

    def __init__(self, url: str) -> None:
        headers = {"authorization": f"Bearer {KEY}"}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=120)

    def ask(self, model: str, ask: Ask) -> Answer:
        body = openai_body(model, ask)
        if not ask.stream:
            response = self.http.post("/v1/chat/completions", json=body)
            if response.status_code != 200:
                raise http_failure(response)
            return openai_answer(response.json())
        with self.http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                response.read()
                raise http_failure(response)
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = OpenAIStream()
            done = False
            for data in sse_data(response.iter_lines()):
                assert not done, "nothing follows data: [DONE]"
                if data == "[DONE]":
                    done = True
                    continue
                event = json.loads(data)
                if "error" in event:
                    error = event["error"]
                    raise Failed(200, error.get("type"), error["message"], partial=stream.text)
                stream.add(event)
            assert done, "the stream ends with data: [DONE]"
            return stream.answer()


# -- the Anthropic wire format ---------------------------------------------------------------


def anthropic_body(model: str, ask: Ask) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for message in ask.messages:
        if isinstance(message, User):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": message.text}]
            if message.image:
                head, _, data = message.image.partition(",")
                media_type = head.removeprefix("data:").removesuffix(";base64")
                source = {"type": "base64", "media_type": media_type, "data": data}
                blocks.insert(0, {"type": "image", "source": source})
            messages.append({"role": "user", "content": blocks})
        elif isinstance(message, Assistant):
            blocks = [{"type": "text", "text": message.text}] if message.text else []
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": json.loads(c.arguments)}
                for c in message.calls
            ]
            messages.append({"role": "assistant", "content": blocks})
        else:
            result = {
                "type": "tool_result",
                "tool_use_id": message.call.id,
                "content": message.text,
            }
            messages.append({"role": "user", "content": [result]})
    body: dict[str, Any] = {
        "model": model, "messages": messages, "max_tokens": ask.max_tokens,
    }  # fmt: skip
    if ask.system:
        body["system"] = ask.system
    if ask.tools:
        body["tools"] = [
            {"name": name, "input_schema": function_tool(name)["function"]["parameters"]}
            for name in ask.tools
        ]
        kinds = {"auto": "auto", "required": "any", "none": "none", None: "auto"}
        choice: dict[str, Any] = {"type": kinds.get(ask.tool_choice, "tool")}
        if choice["type"] == "tool":
            choice["name"] = ask.tool_choice
        if ask.parallel is not None:
            choice["disable_parallel_tool_use"] = not ask.parallel
        body["tool_choice"] = choice
    if ask.schema is not None:
        body["output_config"] = {"format": {"type": "json_schema", "schema": ask.schema}}
    return body


def anthropic_answer(reply: dict[str, Any]) -> Answer:
    assert reply["type"] == "message", reply
    blocks = reply["content"]
    text = "".join(b["text"] for b in blocks if b["type"] == "text")
    calls = [
        Call(b["id"], b["name"], json.dumps(b["input"])) for b in blocks if b["type"] == "tool_use"
    ]
    usage = (reply["usage"]["input_tokens"], reply["usage"]["output_tokens"])
    return Answer(text, calls, ANTHROPIC_FINISH[reply["stop_reason"]], usage)


class AnthropicStream:
    """Messages stream events reassembled, checking Anthropic's event order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.blocks: list[dict[str, Any]] = []
        self.open = False
        self.stop_reason: str | None = None
        self.input_tokens = 0
        self.output_tokens: int | None = None
        self.usage_reports = 0

    @property
    def text(self) -> str:
        return "".join(b["text"] for b in self.blocks if b["type"] == "text")

    def add(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        assert (kind == "message_start") == (not self.events), "message_start comes first, once"
        assert "message_stop" not in self.events, "nothing follows message_stop"
        self.events.append(kind)
        if kind == "message_start":
            self.input_tokens = event["message"]["usage"]["input_tokens"]
        elif kind == "content_block_start":
            assert not self.open and event["index"] == len(self.blocks)
            self.open = True
            block = dict(event["content_block"])
            block.setdefault("text", "")
            block["arguments"] = ""
            self.blocks.append(block)
        elif kind == "content_block_delta":
            assert self.open and event["index"] == len(self.blocks) - 1
            delta = event["delta"]
            if delta["type"] == "text_delta":
                self.blocks[-1]["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                self.blocks[-1]["arguments"] += delta["partial_json"]
        elif kind == "content_block_stop":
            assert self.open and event["index"] == len(self.blocks) - 1
            self.open = False
        elif kind == "message_delta":
            assert not self.open, "every block is closed before message_delta"
            self.stop_reason = event["delta"]["stop_reason"]
            usage = event["usage"]
            self.output_tokens = usage["output_tokens"]
            if usage.get("input_tokens") is not None:
                self.input_tokens = usage["input_tokens"]
            self.usage_reports += 1
        else:
            assert kind in ("ping", "message_stop"), f"unknown event {kind}"

    def answer(self) -> Answer:
        assert self.events[-1] == "message_stop", "the stream ends with message_stop"
        assert self.stop_reason and self.output_tokens is not None
        calls = [
            Call(b["id"], b["name"], b["arguments"]) for b in self.blocks if b["type"] == "tool_use"
        ]
        usage = (self.input_tokens, self.output_tokens)
        return Answer(
            self.text, calls, ANTHROPIC_FINISH[self.stop_reason], usage, self.usage_reports
        )


class AnthropicSDK:
    name = "anthropic SDK"

    def __init__(self, url: str) -> None:
        self.client = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0, timeout=120)

    def ask(self, model: str, ask: Ask) -> Answer:
        body = anthropic_body(model, ask)
        stream = AnthropicStream()
        try:
            if not ask.stream:
                return anthropic_answer(self.client.messages.create(**body).model_dump())
            for event in self.client.messages.create(**body, stream=True):
                stream.add(event.model_dump())
            return stream.answer()
        except anthropic.APIStatusError as error:
            detail = error.body.get("error", {}) if isinstance(error.body, dict) else {}
            raise Failed(
                error.status_code,
                detail.get("type"),
                detail.get("message", ""),
                retry_after=error.response.headers.get("retry-after"),
                partial=stream.text,
            ) from error


CLIENTS: list[type[OpenAISDK] | type[AnthropicSDK] | type[RawSSE]] = [
    OpenAISDK,
    AnthropicSDK,
    RawSSE,
]
