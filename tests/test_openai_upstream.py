"""The OpenAI-compatible path, driven by the official SDK against a fake upstream."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from .conftest import UPSTREAM_KEY, Running
from .fakes.openai_upstream import ANSWER, STREAM_PIECES, TOOL_ARGS, FakeUpstream

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_whole_answer(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert reply.choices[0].message.content == ANSWER
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.total_tokens == 16


def test_streamed_answer_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(STREAM_PIECES)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_request_passes_through_unchanged(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    client.chat.completions.create(
        model="aliased",
        messages=[
            {"role": "system", "content": "Be terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hi"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
        ],
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=50,
        stop=["\n\n"],
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        n=1,
        user="u-1",
        extra_body={
            "top_k": 5,
            "min_p": 0.1,
            "repetition_penalty": 1.05,
            "vendor_field": {"nested": [1, 2]},
        },
    )
    sent = upstream.last()
    assert sent.body["model"] == "fake-model"  # the alias is rewritten to the upstream's id
    assert sent.body["vendor_field"] == {"nested": [1, 2]}
    assert sent.body["top_k"] == 5 and sent.body["repetition_penalty"] == 1.05
    assert sent.body["messages"][1]["content"][1]["image_url"]["url"].startswith("data:")
    assert sent.body["stop"] == ["\n\n"] and sent.body["seed"] == 7
    assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_tool_call_round_trip(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    reply = client.chat.completions.create(
        model="tools-model",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    client.chat.completions.create(
        model="fake-model",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 18}'},
        ],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    sent = upstream.last().body
    assert sent["messages"][2] == {
        "role": "tool",
        "tool_call_id": call.id,
        "content": '{"temp_c": 18}',
    }
    assert sent["messages"][1]["tool_calls"][0]["id"] == call.id
    assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_streamed_parallel_tool_calls(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="tools-model",
        messages=[{"role": "user", "content": "Weather and time?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for fragment in choice.delta.tool_calls or ():
                call = calls.setdefault(fragment.index, {"name": "", "arguments": ""})
                if fragment.function and fragment.function.name:
                    call["name"] += fragment.function.name
                if fragment.function and fragment.function.arguments:
                    call["arguments"] += fragment.function.arguments
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert all(c["arguments"] == "".join(TOOL_ARGS) for c in calls.values())


def test_response_format_is_forwarded(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "recipe", "schema": schema, "strict": True},
    }
    # The fake answers in words, so the strict schema's guarantee ends in a 502.
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "A recipe"}],
            response_format=response_format,  # type: ignore[arg-type]
        )
    assert upstream.last().body["response_format"] == response_format


def test_legacy_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="fake-model", prompt="Say hello")
    assert reply.choices[0].text == ANSWER
    stream = client.completions.create(model="fake-model", prompt="Say hello", stream=True)
    assert "".join(c.choices[0].text for c in stream if c.choices) == "".join(STREAM_PIECES)


def test_embeddings(client: openai.OpenAI) -> None:
    reply = client.embeddings.create(model="fake-model", input=["a", "b"])
    assert [d.index for d in reply.data] == [0, 1]
    assert reply.data[0].embedding == [0.1, 0.2, 0.3]


@pytest.mark.parametrize(
    ("model", "error", "status"),
    [
        ("error-400", openai.BadRequestError, 400),
        ("error-429", openai.RateLimitError, 429),
        ("error-500", openai.InternalServerError, 500),
        ("error-401", openai.InternalServerError, 502),
        ("garbage", openai.InternalServerError, 502),
        ("unreachable", openai.InternalServerError, 502),
        ("times-out", openai.InternalServerError, 504),
        ("no-such-model", openai.NotFoundError, 404),
    ],
)
def test_upstream_failures_map_to_sdk_errors(
    client: openai.OpenAI, model: str, error: type[openai.APIStatusError], status: int
) -> None:
    with pytest.raises(error) as raised:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == status
    body = raised.value.body
    assert isinstance(body, dict) and set(body) >= {"message", "type", "param", "code"}


def test_rate_limit_keeps_retry_after(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={"model": "error-429", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_upstream_key_never_reaches_the_client(http: httpx.Client) -> None:
    for model in ("leaky-key", "error-401"):
        response = http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "x"}]},
        )
        assert UPSTREAM_KEY not in response.text
        assert UPSTREAM_KEY[:12] not in response.text


def test_unknown_model_is_404_model_not_found(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_crlf_framed_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="crlf", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "".join(STREAM_PIECES)


@pytest.mark.parametrize("model", ["midstream-error", "truncated", "bad-chunk"])
def test_failure_after_the_stream_started(
    client: openai.OpenAI, http: httpx.Client, model: str
) -> None:
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError):
        list(stream)
    raw = http.post(
        "/v1/chat/completions",
        json={"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]},
    )
    events = [line for line in raw.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2].removeprefix("data: "))["error"]
    assert set(error) == {"message", "type", "param", "code"}


def test_client_disconnect_cancels_the_upstream(gateway: Running, upstream: FakeUpstream) -> None:
    before = upstream.cancelled
    with httpx.Client(timeout=1) as quick, pytest.raises(httpx.ReadTimeout):
        # The upstream takes 3 s; the client gives up after 1 s and closes its connection.
        quick.post(
            gateway.v1 + "/chat/completions",
            json={"model": "slow", "messages": [{"role": "user", "content": "x"}]},
        )
    gave_up = time.monotonic()
    while upstream.cancelled == before and time.monotonic() - gave_up < 2:
        time.sleep(0.005)
    assert upstream.cancelled == before + 1
    # The fake upstream checks its connection every 10 ms.
    assert time.monotonic() - gave_up < 0.2


def test_models_list_and_get(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "fake-model" in ids and "local" in ids
    assert client.models.retrieve("local").owned_by == "llmrelay"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
