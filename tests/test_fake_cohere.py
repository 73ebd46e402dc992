"""The fake Cohere upstream, driven by Cohere's official SDK (and raw httpx where the SDK
can't show something), to prove it speaks the v2 Chat wire format faithfully."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import cohere
import httpx
import pytest
from cohere.core.api_error import ApiError

from .fakes.cohere_upstream import FakeCohereUpstream
from .fakes.scenario import (
    ARGUMENT_FRAGMENTS,
    COMPLETION_TOKENS,
    MIDSTREAM_MESSAGE,
    MIDSTREAM_PIECES,
    PROMPT_TOKENS,
    TOOL_ARGUMENTS,
    View,
    function_tool,
    pieces,
    summary,
)


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


TOOLS: Any = [function_tool("get_weather"), function_tool("get_time")]
HI: Any = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeCohereUpstream]:
    with FakeCohereUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def co(fake: FakeCohereUpstream) -> cohere.ClientV2:
    return cohere.ClientV2(api_key="k", base_url=fake.root, max_retries=0)


def _post(fake: FakeCohereUpstream, body: dict[str, Any], **headers: str) -> httpx.Response:
    headers = headers or {"Authorization": "Bearer k"}
    return httpx.post(f"{fake.root}/v2/chat", json=body, headers=headers)


def _raw_events(response: httpx.Response) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """The named events of an SSE body, and the data lines that had no event name."""
    named, bare = [], []
    for block in response.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        if "event" in lines:
            named.append((lines["event"], json.loads(lines["data"])))
        elif "data" in lines:
            bare.append(lines["data"])
    return named, bare


def _content_texts(events: list[Any]) -> list[str]:
    return [e.delta.message.content.text for e in events if e.type == "content-delta"]


def test_plain_reply(co: cohere.ClientV2, fake: FakeCohereUpstream) -> None:
    reply = co.chat(model="command-a-03-2025", messages=HI)
    assert reply.finish_reason == "COMPLETE"
    assert reply.message.content is not None
    assert reply.message.content[0].type == "text"
    assert reply.message.content[0].text == summary(View(texts=["Hi"]))
    assert reply.message.tool_calls is None and reply.id
    assert reply.usage is not None and reply.usage.tokens and reply.usage.billed_units
    assert reply.usage.tokens.input_tokens == PROMPT_TOKENS
    assert reply.usage.billed_units.output_tokens == COMPLETION_TOKENS
    sent = fake.last()
    assert sent.path == "/v2/chat" and sent.headers["Authorization"] == "Bearer k"
    assert sent.body["stream"] is False


def test_streamed_reply_reassembled(co: cohere.ClientV2) -> None:
    events: list[Any] = list(co.chat_stream(model="command-a", messages=HI))
    text = summary(View(texts=["Hi"]))
    deltas = ["content-delta"] * len(pieces(text))
    assert [e.type for e in events] == [
        "message-start",
        "content-start",
        *deltas,
        "content-end",
        "message-end",
    ]
    assert "".join(_content_texts(events)) == text
    end = events[-1]
    assert end.type == "message-end" and end.delta is not None
    assert end.delta.finish_reason == "COMPLETE" and end.id == events[0].id
    assert end.delta.usage is not None and end.delta.usage.tokens is not None
    assert end.delta.usage.tokens.output_tokens == COMPLETION_TOKENS


def test_stream_framing_on_the_wire(fake: FakeCohereUpstream) -> None:
    response = _post(fake, {"model": "m", "messages": HI, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    named, bare = _raw_events(response)
    assert bare == ["[DONE]"] and response.text.endswith("data: [DONE]\n\n")
    assert all(name == data["type"] for name, data in named)
    with_usage = [name for name, data in named if "usage" in json.dumps(data)]
    assert with_usage == ["message-end"]
    start = named[0][1]
    message = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": []}
    assert start["delta"] == {"message": message}
    assert named[-1][1]["delta"]["usage"] == {
        "billed_units": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
        "tokens": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
    }


def test_tool_calls_whole(co: cohere.ClientV2) -> None:
    reply = co.chat(model="m", messages=HI, tools=TOOLS)
    assert reply.finish_reason == "TOOL_CALL"
    assert reply.message.tool_plan and not reply.message.content
    calls = reply.message.tool_calls or []
    assert [c.id for c in calls] == ["get_weather_1", "get_time_2"]
    assert [c.function.name for c in calls if c.function] == ["get_weather", "get_time"]
    assert all(c.type == "function" for c in calls)
    for call in calls:
        assert call.function is not None and isinstance(call.function.arguments, str)
        assert json.loads(call.function.arguments) == TOOL_ARGUMENTS


def test_tool_calls_streamed(co: cohere.ClientV2) -> None:
    events: list[Any] = list(co.chat_stream(model="m", messages=HI, tools=TOOLS))
    kinds = [e.type for e in events]
    per_call = ["tool-call-start", *["tool-call-delta"] * len(ARGUMENT_FRAGMENTS), "tool-call-end"]
    plan = kinds[1 : kinds.index("tool-call-start")]
    assert plan and set(plan) == {"tool-plan-delta"}
    assert kinds == ["message-start", *plan, *per_call, *per_call, "message-end"]
    calls: dict[int, dict[str, str]] = {}
    for event in events:
        if event.type == "tool-call-start":
            opened = event.delta.message.tool_calls
            calls[event.index] = {"id": opened.id, "name": opened.function.name, "args": ""}
        elif event.type == "tool-call-delta":
            calls[event.index]["args"] += event.delta.message.tool_calls.function.arguments
    # Indexes count content blocks (the tool plan is block 0), not tool calls.
    assert sorted(calls) == [1, 2]
    assert [c["name"] for c in calls.values()] == ["get_weather", "get_time"]
    assert [c["id"] for c in calls.values()] == ["get_weather_1", "get_time_2"]
    assert all(json.loads(c["args"]) == TOOL_ARGUMENTS for c in calls.values())
    assert events[-1].delta.finish_reason == "TOOL_CALL"


def test_view_of_system_turns_image_and_tool_result(co: cohere.ClientV2) -> None:
    messages: Any = [
        {"role": "system", "content": "Be terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                _image("data:image/png;base64,AAAA"),
                _image("https://example.com/cat.png"),
            ],
        },
        {
            "role": "assistant",
            "tool_plan": "I will call get_weather.",
            "tool_calls": [
                {
                    "id": "get_weather_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "get_weather_1",
            "content": [{"type": "document", "document": {"data": {"temp_c": 18}}}],
        },
        {"role": "assistant", "content": "18C."},
        {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
    ]
    reply: Any = co.chat(model="m", messages=messages, tools=TOOLS)
    expected = View(
        system=["Be terse."],
        texts=["Weather here?", "18C.", "Thanks"],
        images=2,
        results=['{"temp_c": 18}'],
    )
    assert reply.finish_reason == "COMPLETE"
    assert reply.message.content[0].text == summary(expected)


def test_tool_choice_none_answers_text(co: cohere.ClientV2) -> None:
    reply = co.chat(model="m", messages=HI, tools=TOOLS, tool_choice="NONE")
    assert reply.finish_reason == "COMPLETE" and reply.message.tool_calls is None


def test_json_schema(co: cohere.ClientV2, fake: FakeCohereUpstream) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "minutes": {"type": "integer"}},
        "required": ["title"],
    }
    json_object: Any = {"type": "json_object", "json_schema": schema}
    reply: Any = co.chat(model="m", messages=HI, response_format=json_object)
    assert json.loads(reply.message.content[0].text) == {"keys": ["title", "minutes"]}
    assert fake.last().body["response_format"] == {"type": "json_object", "json_schema": schema}


CALLED = {
    "role": "assistant",
    "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    ],
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"model": None}, "model is required"),
        ({"messages": []}, "at least one message"),
        ({"messages": [{"role": "developer", "content": "x"}]}, "role must be"),
        ({"messages": [*HI, CALLED, {"role": "tool", "content": "x"}]}, "tool_call_id is required"),
        (
            {"messages": [*HI, CALLED, {"role": "tool", "tool_call_id": "c2", "content": "x"}]},
            "matches no earlier tool call",
        ),
        ({"top_p": 0.9}, "parameter top_p is not a valid field"),
        ({"top_k": 5}, "parameter top_k is not a valid field"),
        ({"n": 1}, "parameter n is not a valid field"),
        ({"stop": ["x"]}, "parameter stop is not a valid field"),
        ({"max_completion_tokens": 5}, "parameter max_completion_tokens is not a valid field"),
        ({"stream_options": {}}, "parameter stream_options is not a valid field"),
        ({"parallel_tool_calls": True}, "parameter parallel_tool_calls is not a valid field"),
        ({"tools": TOOLS, "tool_choice": "auto"}, "tool_choice must be REQUIRED or NONE"),
        ({"tool_choice": "REQUIRED"}, "needs tools"),
        (
            {"tools": TOOLS, "response_format": {"type": "json_object"}},
            "cannot be combined with tools",
        ),
        ({"response_format": {"type": "json_schema"}}, "response_format.type"),
        (
            {
                "response_format": {
                    "type": "json_object",
                    "json_schema": {"name": "x", "schema": {}},
                }
            },
            "JSON schema of type object",
        ),
        ({"tools": [{"name": "get_weather", "input_schema": {}}]}, "type: function"),
        (
            {"messages": [*HI, {"role": "assistant", "tool_calls": [{"type": "function"}]}]},
            "tool_calls need",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            "content parts must be of type",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": "data:x"}]}
                ]
            },
            "https URL or a data: URI",
        ),
        (
            {"messages": [{"role": "user", "content": [_image("http://example.com/a.png")]}]},
            "https URL or a data: URI",
        ),
        ({"messages": [*HI, {"role": "assistant"}]}, "needs content or tool_calls"),
    ],
)
def test_invalid_requests_get_a_native_400(
    fake: FakeCohereUpstream, change: dict[str, Any], problem: str
) -> None:
    body = {k: v for k, v in {"model": "m", "messages": HI, **change}.items() if v is not None}
    response = _post(fake, body)
    assert response.status_code == 400
    assert problem in response.json()["message"]
    assert response.json()["message"].startswith("invalid request: ")


def test_tool_arguments_must_be_a_string(fake: FakeCohereUpstream) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
    body = {"model": "m", "messages": [*HI, {"role": "assistant", "tool_calls": [call]}]}
    response = _post(fake, body)
    assert response.status_code == 400 and "must be a JSON string" in response.json()["message"]


def test_the_sdk_raises_bad_request(co: cohere.ClientV2) -> None:
    dangling: Any = {"role": "tool", "tool_call_id": "nope", "content": "18C"}
    with pytest.raises(cohere.BadRequestError) as caught:
        co.chat(model="m", messages=[*HI, dangling])
    assert "matches no earlier tool call" in caught.value.body["message"]


@pytest.mark.parametrize("auth", [None, "Bearer", "k", "Basic k"])
def test_auth_is_required(fake: FakeCohereUpstream, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth is not None else {"X-Nothing": "1"}
    response = _post(fake, {"model": "m", "messages": HI}, **headers)
    assert response.status_code == 401
    assert response.json()["message"] == "invalid api token"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, cohere.BadRequestError),
        (401, cohere.UnauthorizedError),
        (429, cohere.TooManyRequestsError),
        (500, cohere.InternalServerError),
        (503, cohere.ServiceUnavailableError),
    ],
)
def test_error_statuses_raise_the_sdk_class(
    co: cohere.ClientV2, status: int, error: type[ApiError]
) -> None:
    with pytest.raises(error) as caught:
        co.chat(model=f"error-{status}", messages=HI)
    assert caught.value.status_code == status
    assert isinstance(caught.value.body["message"], str) and caught.value.body["message"]
    assert (caught.value.headers or {}).get("retry-after") == ("7" if status == 429 else None)


def test_streamed_error_status(co: cohere.ClientV2) -> None:
    with pytest.raises(cohere.TooManyRequestsError):
        list(co.chat_stream(model="error-429", messages=HI))


def test_midstream_error(co: cohere.ClientV2) -> None:
    events: list[Any] = list(co.chat_stream(model="midstream-error", messages=HI))
    assert _content_texts(events) == MIDSTREAM_PIECES
    assert [e.type for e in events][-1] == "message-end"
    assert "content-end" not in [e.type for e in events]
    assert events[-1].delta.finish_reason == "ERROR"
    assert events[-1].delta.error == MIDSTREAM_MESSAGE


def test_midstream_error_whole_is_a_500(co: cohere.ClientV2) -> None:
    with pytest.raises(cohere.InternalServerError) as caught:
        co.chat(model="midstream-error", messages=HI)
    assert caught.value.body["message"] == MIDSTREAM_MESSAGE
