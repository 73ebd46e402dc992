"""The fake Anthropic upstream, driven by the official ``anthropic`` SDK: proof it is faithful."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam, ToolParam

from .fakes.anthropic_upstream import FakeAnthropicUpstream
from .fakes.scenario import (
    ARGUMENT_FRAGMENTS,
    COMPLETION_TOKENS,
    MIDSTREAM_MESSAGE,
    MIDSTREAM_PIECES,
    PROMPT_TOKENS,
    TOOL_ARGUMENTS,
    View,
    pieces,
    summary,
)

WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "Get the weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TIME: ToolParam = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
HI: list[MessageParam] = [{"role": "user", "content": "Hi"}]
HEADERS = {"x-api-key": "sk-fake", "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicUpstream]:
    with FakeAnthropicUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def client(fake: FakeAnthropicUpstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.root, api_key="sk-fake", max_retries=0)


def post(fake: FakeAnthropicUpstream, body: dict[str, Any], **headers: str) -> httpx.Response:
    merged = {**HEADERS, **headers}
    return httpx.post(f"{fake.root}/v1/messages", json=body, headers=merged, timeout=10)


def events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of an SSE body."""
    pairs = []
    for frame in response.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        if lines:
            pairs.append((lines["event"], json.loads(lines["data"])))
    return pairs


def test_plain_reply(client: anthropic.Anthropic, fake: FakeAnthropicUpstream) -> None:
    raw = client.messages.with_raw_response.create(model="claude-x", max_tokens=64, messages=HI)
    reply = raw.parse()
    assert reply.type == "message" and reply.role == "assistant" and reply.model == "claude-x"
    assert reply.id.startswith("msg_fake")
    assert [b.type for b in reply.content] == ["text"]
    assert reply.content[0].text == summary(View(texts=["Hi"]))  # type: ignore[union-attr]
    assert reply.stop_reason == "end_turn" and reply.stop_sequence is None
    assert reply.usage.input_tokens == PROMPT_TOKENS
    assert reply.usage.output_tokens == COMPLETION_TOKENS
    assert reply.usage.cache_read_input_tokens == 0
    assert raw.headers["request-id"].startswith("req_")
    sent = fake.last()
    assert sent.path == "/v1/messages"
    # This SDK sends its key as a bearer token; the raw tests below send ``x-api-key``.
    assert sent.headers["Authorization"] == "Bearer sk-fake" and sent.headers["anthropic-version"]


def test_streamed_reply_reassembles(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="claude-x", max_tokens=64, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == summary(View(texts=["Hi"]))
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == PROMPT_TOKENS
    assert final.usage.output_tokens == COMPLETION_TOKENS


def test_stream_events_in_documented_order(fake: FakeAnthropicUpstream) -> None:
    response = post(fake, {"model": "claude-x", "max_tokens": 64, "messages": HI, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    pairs = events(response)
    assert all(name == data["type"] for name, data in pairs)
    expected_text = summary(View(texts=["Hi"]))
    deltas = ["content_block_delta"] * len(pieces(expected_text))
    assert [name for name, _ in pairs] == [
        "message_start",
        "content_block_start",
        "ping",
        *deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = pairs[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == PROMPT_TOKENS
    assert start["usage"]["cache_creation_input_tokens"] == 0
    assert start["usage"]["cache_read_input_tokens"] == 0
    assert pairs[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    texts = [d["delta"]["text"] for n, d in pairs if n == "content_block_delta"]
    assert "".join(texts) == expected_text
    assert pairs[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": COMPLETION_TOKENS},
    }
    assert "[DONE]" not in response.text


def test_tool_call_whole(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(
        model="claude-x",
        max_tokens=64,
        messages=[{"role": "user", "content": "Weather and time?"}],
        tools=[WEATHER, TIME],
    )
    assert reply.stop_reason == "tool_use"
    assert [(b.type, b.id, b.name) for b in reply.content] == [  # type: ignore[union-attr]
        ("tool_use", "toolu_fake1", "get_weather"),
        ("tool_use", "toolu_fake2", "get_time"),
    ]
    assert reply.content[0].input == TOOL_ARGUMENTS  # type: ignore[union-attr]


def test_forced_tool_and_tool_choice_none(client: anthropic.Anthropic) -> None:
    forced = client.messages.create(
        model="claude-x",
        max_tokens=64,
        messages=HI,
        tools=[WEATHER, TIME],
        tool_choice={"type": "tool", "name": "get_time"},
    )
    assert [b.name for b in forced.content] == ["get_time"]  # type: ignore[union-attr]
    none = client.messages.create(
        model="claude-x",
        max_tokens=64,
        messages=HI,
        tools=[WEATHER],
        tool_choice={"type": "none"},
    )
    assert none.stop_reason == "end_turn" and none.content[0].type == "text"


def test_tool_call_streamed(client: anthropic.Anthropic, fake: FakeAnthropicUpstream) -> None:
    with client.messages.stream(
        model="claude-x",
        max_tokens=64,
        messages=HI,
        tools=[WEATHER, TIME],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.input for b in final.content] == [TOOL_ARGUMENTS] * 2  # type: ignore[union-attr]
    assert [b.id for b in final.content] == ["toolu_fake1", "toolu_fake2"]  # type: ignore[union-attr]
    body = {"model": "claude-x", "max_tokens": 64, "messages": HI, "stream": True}
    pairs = events(post(fake, {**body, "tools": [WEATHER, TIME]}))
    starts = [d for n, d in pairs if n == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1]
    assert starts[0]["content_block"] == {
        "type": "tool_use",
        "id": "toolu_fake1",
        "name": "get_weather",
        "input": {},
    }
    first = [d["delta"] for n, d in pairs if n == "content_block_delta" and d["index"] == 0]
    fragments = ["", *ARGUMENT_FRAGMENTS]
    assert first == [{"type": "input_json_delta", "partial_json": f} for f in fragments]
    assert pairs[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_view_reflects_system_turns_image_and_tool_result(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(
        model="claude-x",
        max_tokens=64,
        system=[{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Be kind."}],
        tools=[WEATHER],
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                    {"type": "text", "text": "Describe, then weather?"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
    )
    assert reply.content[0].text == (  # type: ignore[union-attr]
        "system=Be terse. Be kind.; texts=Describe, then weather?/Checking./Thanks; "
        "images=2; results=18C"
    )


def test_json_schema_output(client: anthropic.Anthropic) -> None:
    schema: dict[str, object] = {"type": "object", "properties": {"city": {}, "temp": {}}}
    reply = client.messages.create(
        model="claude-x",
        max_tokens=64,
        messages=HI,
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    block = reply.content[0]
    assert block.type == "text"
    assert json.loads(block.text) == {"keys": ["city", "temp"]}


def test_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model="claude-x", messages=HI)
    assert counted.input_tokens == PROMPT_TOKENS


@pytest.mark.parametrize(
    ("status", "exception", "kind"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_error_status_raises_matching_exception(
    client: anthropic.Anthropic, status: int, exception: type[Exception], kind: str
) -> None:
    with pytest.raises(exception) as raised:
        client.messages.create(model=f"error-{status}", max_tokens=64, messages=HI)
    error = raised.value
    assert isinstance(error, anthropic.APIStatusError)
    assert error.status_code == status and error.type == kind
    assert error.body["type"] == "error"  # type: ignore[index]
    assert error.request_id is not None and error.request_id.startswith("req_")
    if status == 429:
        assert error.response.headers["retry-after"] == "7"


def test_midstream_error_surfaces_as_sdk_error(client: anthropic.Anthropic) -> None:
    received = []
    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        client.messages.stream(model="midstream-error", max_tokens=64, messages=HI) as stream,
    ):
        for text in stream.text_stream:
            received.append(text)
    assert received == MIDSTREAM_PIECES
    assert raised.value.status_code == 200
    assert raised.value.type == "overloaded_error"
    assert raised.value.api_message == MIDSTREAM_MESSAGE
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(model="midstream-error", max_tokens=64, messages=HI)


def test_midstream_error_wire_form(fake: FakeAnthropicUpstream) -> None:
    body = {"model": "midstream-error", "max_tokens": 64, "messages": HI, "stream": True}
    response = post(fake, body)
    assert response.status_code == 200
    pairs = events(response)
    texts = [d["delta"]["text"] for n, d in pairs if n == "content_block_delta"]
    assert texts == MIDSTREAM_PIECES
    assert pairs[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": MIDSTREAM_MESSAGE}},
    )


@pytest.mark.parametrize(
    ("headers", "status", "kind"),
    [
        ({"x-api-key": ""}, 401, "authentication_error"),
        ({"x-api-key": "", "authorization": "Bearer"}, 401, "authentication_error"),
        ({"x-api-key": "", "authorization": "Basic c2stZmFrZQ=="}, 401, "authentication_error"),
        ({"anthropic-version": ""}, 400, "invalid_request_error"),
    ],
)
def test_auth_headers_required(
    fake: FakeAnthropicUpstream, headers: dict[str, str], status: int, kind: str
) -> None:
    response = post(fake, {"model": "claude-x", "max_tokens": 8, "messages": HI}, **headers)
    assert response.status_code == status
    assert response.json()["error"]["type"] == kind


def _user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def _use(tool_id: str, arguments: Any = None) -> dict[str, Any]:
    call = {"type": "tool_use", "id": tool_id, "name": "get_weather", "input": arguments or {}}
    return {"role": "assistant", "content": [call]}


def _result(tool_id: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": "18C"}


def _image(media_type: str) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": "AA"}}


OK = {"model": "claude-x", "max_tokens": 8, "messages": HI}
TEXT = {"type": "text", "text": "x"}
OPENAI_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
NOT_ANTHROPIC = {
    "n": 1,
    "seed": 7,
    "frequency_penalty": 0.1,
    "presence_penalty": 0.1,
    "logprobs": True,
    "response_format": {"type": "json_object"},
    "tool_calls": [],
    "stop": ["x"],
}
INVALID = [
    ({"model": "claude-x", "messages": HI}, "max_tokens"),
    ({**OK, "max_tokens": 0}, "max_tokens"),
    ({**OK, "messages": []}, "messages"),
    ({"model": "claude-x", "max_tokens": 8}, "messages"),
    ({**OK, "messages": [{"role": "system", "content": "x"}, *HI]}, "messages.0.role"),
    ({**OK, "messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
    ({**OK, "temperature": 1.5}, "temperature"),
    ({**OK, "temperature": -0.1}, "temperature"),
    *[({**OK, field: value}, field) for field, value in NOT_ANTHROPIC.items()],
    ({**OK, "tools": [{"name": "get_weather", "parameters": {}}]}, "tools.0.input_schema"),
    ({**OK, "messages": [*HI, _use("t1"), _user(TEXT, _result("t1"))]}, "must come first"),
    (
        {**OK, "messages": [*HI, {"role": "assistant", "content": [_result("t1")]}]},
        "only allowed in user messages",
    ),
    ({**OK, "messages": [*HI, _use("t1"), _user(_result("t2"))]}, "unexpected `tool_use_id`"),
    ({**OK, "messages": [*HI, _user(_result("t1"))]}, "unexpected `tool_use_id`"),
    ({**OK, "messages": [*HI, _use("t1"), *HI]}, "without `tool_result` blocks"),
    ({**OK, "messages": [*HI, _use("t1", '{"city": "Paris"}')]}, "messages.1.content.0.input"),
    ({**OK, "messages": [*HI, _use("")]}, "messages.1.content.0.id"),
    ({**OK, "messages": [_user(_image("image/bmp"))]}, "media_type"),
    ({**OK, "messages": [_user(OPENAI_IMAGE)]}, "messages.0.content.0.type"),
    ({**OK, "messages": [{"role": "user", "content": ""}]}, "non-empty"),
    ({**OK, "output_config": {"format": {"type": "json_object"}}}, "output_config"),
]


@pytest.mark.parametrize(("body", "named"), INVALID)
def test_invalid_requests_are_refused(
    fake: FakeAnthropicUpstream, body: dict[str, Any], named: str
) -> None:
    response = post(fake, body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert named in error["error"]["message"]


def test_sdk_raises_bad_request_for_an_invalid_request(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        client.messages.create(
            model="claude-x", max_tokens=8, messages=HI, extra_body={"temperature": 2.0}
        )
