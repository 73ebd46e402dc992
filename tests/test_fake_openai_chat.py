"""The fake OpenAI Chat Completions upstream, driven by the official ``openai`` SDK, and by raw
HTTP where the SDK hides the wire: if the official client reads it right, the fake speaks OpenAI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionMessageToolCallParam,
    ChatCompletionToolParam,
)

from .fakes.openai_chat import FakeOpenAIChat
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

WEATHER: ChatCompletionToolParam = function_tool("get_weather")  # type: ignore[assignment]
TIME: ChatCompletionToolParam = function_tool("get_time")  # type: ignore[assignment]
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
OK = {"model": "gpt-fake", "messages": HI}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIChat]:
    with FakeOpenAIChat() as fake:
        yield fake


@pytest.fixture(scope="module")
def client(fake: FakeOpenAIChat) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0)


def post(
    fake: FakeOpenAIChat, body: Any, authorization: str | None = "Bearer sk-fake"
) -> httpx.Response:
    headers = {"authorization": authorization} if authorization is not None else {}
    return httpx.post(f"{fake.base_url}/chat/completions", json=body, headers=headers, timeout=10)


def chunks(response: httpx.Response) -> list[Any]:
    """The data of each SSE event, ``[DONE]`` as the string it is."""
    frames = [frame for frame in response.text.split("\n\n") if frame]
    assert all(frame.startswith("data: ") for frame in frames)
    datas = [frame.removeprefix("data: ") for frame in frames]
    return [data if data == "[DONE]" else json.loads(data) for data in datas]


def test_plain_reply(client: openai.OpenAI, fake: FakeOpenAIChat) -> None:
    reply = client.chat.completions.create(model="gpt-fake", messages=HI)
    assert reply.object == "chat.completion" and reply.model == "gpt-fake"
    assert reply.id == f"chatcmpl-fake{len(fake.requests)}"
    assert reply.system_fingerprint
    [choice] = reply.choices
    assert choice.message.role == "assistant" and choice.message.refusal is None
    assert choice.message.content == summary(View(texts=["Hi"]))
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop" and choice.logprobs is None
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert reply.usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
    sent = fake.last()
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-fake"
    assert sent.body == {"model": "gpt-fake", "messages": HI}


def test_streamed_reply(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="gpt-fake", messages=HI, stream=True)
    received = list(stream)
    assert received[0].choices[0].delta.role == "assistant"
    assert received[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in received)
    assert text == summary(View(texts=["Hi"]))
    assert received[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in received)
    assert len({c.id for c in received}) == 1


def test_stream_on_the_wire(fake: FakeOpenAIChat) -> None:
    response = post(fake, {**OK, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = chunks(response)
    assert events[-1] == "[DONE]"
    data = events[:-1]
    assert all(d["object"] == "chat.completion.chunk" and "usage" not in d for d in data)
    deltas = [d["choices"][0]["delta"] for d in data]
    texts = pieces(summary(View(texts=["Hi"])))
    assert deltas == [{"role": "assistant", "content": ""}, *[{"content": t} for t in texts], {}]
    assert [d["choices"][0]["finish_reason"] for d in data] == [None] * (len(data) - 1) + ["stop"]


def test_system_developer_and_turns(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-fake",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
            {"role": "user", "content": "One"},
            {"role": "assistant", "content": "Two"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Thr"}, {"type": "text", "text": "ee"}],
            },
        ],
    )
    expected = View(system=["Be terse.", "Be kind."], texts=["One", "Two", "Three"])
    assert reply.choices[0].message.content == summary(expected)


def test_tool_calls_whole(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-fake", messages=HI, tools=[WEATHER, TIME])
    [choice] = reply.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name) for c in calls] == [  # type: ignore[union-attr]
        ("call_fake0", "function", "get_weather"),
        ("call_fake1", "function", "get_time"),
    ]
    assert [json.loads(c.function.arguments) for c in calls] == [TOOL_ARGUMENTS] * 2  # type: ignore[union-attr]


def test_tool_calls_streamed(client: openai.OpenAI, fake: FakeOpenAIChat) -> None:
    stream = client.chat.completions.create(
        model="gpt-fake", messages=HI, tools=[WEATHER, TIME], stream=True
    )
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                assert call.function is not None
                if call.function.name:
                    names[call.index] = call.function.name
                arguments[call.index] = arguments.get(call.index, "") + (
                    call.function.arguments or ""
                )
            finish = choice.finish_reason or finish
    assert names == {0: "get_weather", 1: "get_time"}
    assert arguments == {0: json.dumps(TOOL_ARGUMENTS), 1: json.dumps(TOOL_ARGUMENTS)}
    assert finish == "tool_calls"
    data = chunks(post(fake, {**OK, "tools": [WEATHER, TIME], "stream": True}))[:-1]
    deltas = [d["choices"][0]["delta"] for d in data]
    opening = {"name": "get_weather", "arguments": ""}
    assert deltas[1] == {
        "tool_calls": [{"index": 0, "id": "call_fake0", "type": "function", "function": opening}]
    }
    assert deltas[2 : 2 + len(ARGUMENT_FRAGMENTS)] == [
        {"tool_calls": [{"index": 0, "function": {"arguments": f}}]} for f in ARGUMENT_FRAGMENTS
    ]


def test_forced_tool_and_tool_choice_none(client: openai.OpenAI) -> None:
    forced = client.chat.completions.create(
        model="gpt-fake",
        messages=HI,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = forced.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_time"]  # type: ignore[union-attr]
    none = client.chat.completions.create(
        model="gpt-fake", messages=HI, tools=[WEATHER], tool_choice="none"
    )
    assert none.choices[0].finish_reason == "stop"
    assert none.choices[0].message.content == summary(View(texts=["Hi"]))


def test_tool_results_image_and_pure_tool_call_turn(client: openai.OpenAI) -> None:
    call: ChatCompletionMessageToolCallParam = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps(TOOL_ARGUMENTS)},
    }
    reply = client.chat.completions.create(
        model="gpt-fake",
        tools=[WEATHER],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                    {"type": "text", "text": "Describe, then weather?"},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "user", "content": "Thanks"},
        ],
    )
    assert reply.choices[0].message.content == (
        "system=-; texts=Describe, then weather?/Thanks; images=2; results=18C"
    )


def test_json_schema_and_json_object(client: openai.OpenAI) -> None:
    schema: dict[str, object] = {"type": "object", "properties": {"city": {}, "temp": {}}}
    reply = client.chat.completions.create(
        model="gpt-fake",
        messages=HI,
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
    )
    assert json.loads(reply.choices[0].message.content or "") == {"keys": ["city", "temp"]}
    loose = client.chat.completions.create(
        model="gpt-fake", messages=HI, response_format={"type": "json_object"}
    )
    assert json.loads(loose.choices[0].message.content or "") == {"keys": []}


def test_include_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-fake", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    received = list(stream)
    with_usage = [c for c in received if c.usage is not None]
    assert with_usage == [received[-1]]
    assert received[-1].choices == []
    usage = received[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        PROMPT_TOKENS + COMPLETION_TOKENS,
    )


def test_include_usage_on_the_wire(fake: FakeOpenAIChat) -> None:
    body = {**OK, "stream": True, "stream_options": {"include_usage": True}}
    data = chunks(post(fake, body))[:-1]
    assert all(d["usage"] is None for d in data[:-1])
    assert data[-1]["choices"] == [] and data[-1]["usage"]["total_tokens"] == 16


def test_models(fake: FakeOpenAIChat, client: openai.OpenAI) -> None:
    cards = client.models.list().data
    assert cards and all(c.object == "model" and c.owned_by for c in cards)
    assert fake.last().path == "/v1/models"
    assert httpx.get(f"{fake.base_url}/models").status_code == 401


@pytest.mark.parametrize(
    ("status", "exception", "kind"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, "invalid_request_error"),
        (429, openai.RateLimitError, "requests"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
    ],
)
def test_error_status(
    client: openai.OpenAI, status: int, exception: type[openai.APIStatusError], kind: str
) -> None:
    with pytest.raises(exception) as raised:
        client.chat.completions.create(model=f"error-{status}", messages=HI)
    error = raised.value
    assert error.status_code == status and error.type == kind
    assert isinstance(error.body, dict)
    assert set(error.body) == {"message", "type", "param", "code"}
    if status == 429:
        assert error.code == "rate_limit_exceeded"
        assert error.response.headers["retry-after"] == "7"
    if status == 401:
        assert error.code == "invalid_api_key"


def test_midstream_error(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="midstream-error", messages=HI, stream=True)
    received = []
    with pytest.raises(openai.APIError, match=MIDSTREAM_MESSAGE) as raised:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["", *MIDSTREAM_PIECES]
    assert raised.value.type == "server_error"
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="midstream-error", messages=HI)


def test_midstream_error_on_the_wire(fake: FakeOpenAIChat) -> None:
    events = chunks(post(fake, {**OK, "model": "midstream-error", "stream": True}))
    assert "[DONE]" not in events
    error = {"message": MIDSTREAM_MESSAGE, "type": "server_error", "param": None, "code": None}
    assert events[-1] == {"error": error}


@pytest.mark.parametrize("authorization", [None, "Bearer", "Basic c2stZmFrZQ=="])
def test_key_required(fake: FakeOpenAIChat, authorization: str | None) -> None:
    response = post(fake, OK, authorization)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert fake.last().body == OK


def _assistant_call(call_id: str) -> dict[str, Any]:
    function = {"name": "get_weather", "arguments": "{}"}
    call = {"id": call_id, "type": "function", "function": function}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _tool(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "18C"}


TOOLS = {**OK, "tools": [WEATHER]}
INVALID = [
    ({"messages": HI}, "model"),
    ({"model": "", "messages": HI}, "model"),
    ({"model": "gpt-fake"}, "messages"),
    ({**OK, "messages": []}, "messages"),
    ({**OK, "messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
    ({**OK, "messages": [{"role": "user"}]}, "messages[0].content"),
    ({**OK, "messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "content[0].type"),
    (
        {**OK, "messages": [{"role": "system", "content": [{"type": "image_url"}]}]},
        "messages[0].content[0].type",
    ),
    ({**OK, "messages": [*HI, _tool("call_1")]}, "messages[1].tool_call_id"),
    ({**OK, "messages": [*HI, _assistant_call("call_1"), _tool("call_2")]}, "tool_call_id"),
    ({**OK, "messages": [*HI, {"role": "tool", "content": "18C"}]}, "tool_call_id"),
    (
        {
            **OK,
            "messages": [
                *HI,
                {**_assistant_call("c"), "tool_calls": [{"id": "c", "type": "function"}]},
            ],
        },
        "messages[1].tool_calls[0].function",
    ),
    ({**OK, "tools": [{"name": "get_weather"}]}, "tools[0].type"),
    ({**OK, "tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
    ({**TOOLS, "tool_choice": "any"}, "tool_choice"),
    ({**TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "nope"),
    ({**OK, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "tools"),
    ({**OK, "response_format": {"type": "xml"}}, "response_format.type"),
    ({**OK, "response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    (
        {**OK, "response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        "json_schema.name",
    ),
    (
        {**OK, "response_format": {"type": "json_schema", "json_schema": {"name": "w"}}},
        "json_schema.schema",
    ),
    ({**OK, "stream_options": {"include_usage": True}}, "stream_options"),
    ({**OK, "stream": False, "stream_options": {"include_usage": True}}, "stream_options"),
    ([OK], "JSON"),
]


@pytest.mark.parametrize(("body", "named"), INVALID)
def test_invalid_requests_are_refused(fake: FakeOpenAIChat, body: Any, named: str) -> None:
    response = post(fake, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert named in error["message"]


def test_sdk_raises_bad_request_for_refusals(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="not found in 'tools'") as raised:
        client.chat.completions.create(
            model="gpt-fake",
            messages=HI,
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        )
    assert raised.value.param == "tool_choice.function.name"
    with pytest.raises(openai.BadRequestError, match="stream_options"):
        client.chat.completions.create(
            model="gpt-fake", messages=HI, stream_options={"include_usage": True}
        )
    with pytest.raises(openai.BadRequestError, match="tool_call_id") as raised:
        client.chat.completions.create(
            model="gpt-fake",
            messages=[*HI, _assistant_call("call_1"), _tool("call_9")],  # type: ignore[list-item]
        )
    assert raised.value.param == "messages[2].tool_call_id"


def test_valid_edge_cases_are_accepted(fake: FakeOpenAIChat) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}
    document = {"type": "file", "file": {"file_data": "AA", "filename": "a.pdf"}}
    body = {
        **OK,
        "messages": [
            {"role": "user", "content": [audio, document, {"type": "text", "text": "Hi"}]},
            {**_assistant_call("call_1"), "content": ""},
            _tool("call_1"),
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        "tool_choice": "required",
        "response_format": {"type": "text"},
        "stream": False,
        "temperature": 0.2,
    }
    response = post(fake, body)
    assert response.status_code == 200, response.text
    content = response.json()["choices"][0]["message"]["content"]
    assert content == "system=-; texts=Hi; images=0; results=18C"
