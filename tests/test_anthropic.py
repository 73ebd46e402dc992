"""Anthropic both ways: the ``anthropic`` provider driven by the OpenAI SDK against a fake
Anthropic upstream, and the inbound ``/v1/messages`` API driven by the Anthropic SDK
against every kind of backend."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from .conftest import Running, fake_models, run_gateway
from .fakes.anthropic_upstream import FakeAnthropicUpstream
from .fakes.openai_upstream import FakeUpstream
from .fakes.scenario import ARGUMENT_FRAGMENTS, MIDSTREAM_PIECES

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    for name in ("get_weather", "get_time")
]
USER = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicUpstream]:
    with FakeAnthropicUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def relay(
    fake: FakeAnthropicUpstream, gateway: Running, tmp_path_factory: Any
) -> Iterator[Running]:
    model = fake_models("anthropic", fake.root, api_key="sk-ant-fake")

    config = {
        "models": [
            model("claude", "claude-fake"),
            model("claude-lenient", "claude-fake", drop_unsupported_params=True),
            *(model(f"claude-{s}", s) for s in ("error-400", "error-429", "error-529")),
            model("claude-midstream", "midstream-error"),
            model("claude-held", "held"),
        ]
    }
    with run_gateway(config, tmp_path_factory.mktemp("anthropic")) as running:
        yield running


@pytest.fixture(scope="module")
def client(relay: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=relay.v1, api_key="x", max_retries=0, timeout=30)


# -- the anthropic provider, through the OpenAI SDK -------------------------------------------


def test_plain_answer_with_usage(client: openai.OpenAI, fake: FakeAnthropicUpstream) -> None:
    reply = client.chat.completions.create(
        model="claude", messages=USER, temperature=0.5, top_p=0.9, stop=["END"], max_tokens=50
    )
    assert reply.choices[0].message.content == "system=-; texts=Hi; images=0; results=-"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (9, 7)
    sent = fake.last()
    assert sent.headers["x-api-key"] == "sk-ant-fake"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body["model"] == "claude-fake"
    assert (sent.body["temperature"], sent.body["top_p"], sent.body["max_tokens"]) == (0.5, 0.9, 50)
    assert sent.body["stop_sequences"] == ["END"]


def test_max_tokens_gets_a_default(client: openai.OpenAI, fake: FakeAnthropicUpstream) -> None:
    client.chat.completions.create(model="claude", messages=USER)
    assert fake.last().body["max_tokens"] == 4096


def test_system_and_multi_turn(client: openai.OpenAI, fake: FakeAnthropicUpstream) -> None:
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": [{"type": "text", "text": "Who am I?"}]},
    ]
    reply = client.chat.completions.create(model="claude", messages=messages)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == (
        "system=Be terse.; texts=My name is Ada./Hello Ada./Who am I?; images=0; results=-"
    )
    assert fake.last().body["system"] == [{"type": "text", "text": "Be terse."}]


def test_streamed_text_reassembles_to_the_whole(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="claude", messages=USER)
    stream = client.chat.completions.create(
        model="claude", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usages = [c.usage for c in chunks if c.usage is not None]
    assert len(usages) == 1 and usages[0].total_tokens == 16
    assert chunks[-1].choices == []


def test_stream_begins_with_the_upstream_reply(
    client: openai.OpenAI, fake: FakeAnthropicUpstream
) -> None:
    """The role goes out as soon as the upstream's reply begins, before any content comes;
    text deltas that arrive together leave as one chunk."""
    fake.resume.clear()
    stream = client.chat.completions.create(model="claude-held", messages=USER, stream=True)
    first = next(iter(stream))
    fake.resume.set()
    rest = list(stream)
    assert fake.resumed[-1]  # the first chunk came while the upstream held back the rest
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    texts = [c.choices[0].delta.content for c in rest if c.choices and c.choices[0].delta.content]
    whole = client.chat.completions.create(model="claude", messages=USER)
    assert texts == [whole.choices[0].message.content]


def test_parallel_tool_calls_whole_and_streamed(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="claude", messages=USER, tools=TOOLS)  # type: ignore[arg-type]
    calls = whole.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}] * 2
    assert whole.choices[0].finish_reason == "tool_calls"

    stream = client.chat.completions.create(model="claude", messages=USER, tools=TOOLS, stream=True)  # type: ignore[arg-type]
    streamed: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                entry = streamed.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                entry["name"] += (call.function and call.function.name) or ""
                entry["arguments"] += (call.function and call.function.arguments) or ""
    assert sorted(streamed) == [0, 1]
    assert [streamed[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    # Exactly the upstream's fragments, and the same object as the whole answer's.
    assert [streamed[i]["arguments"] for i in (0, 1)] == ["".join(ARGUMENT_FRAGMENTS)] * 2
    assert [json.loads(streamed[i]["arguments"]) for i in (0, 1)] == [
        json.loads(c.function.arguments) for c in calls
    ]
    assert all(streamed[i]["id"].startswith("toolu_") for i in (0, 1))
    assert finish == "tool_calls"


def test_forced_tool_and_round_trip(client: openai.OpenAI, fake: FakeAnthropicUpstream) -> None:
    forced = client.chat.completions.create(
        model="claude",
        messages=USER,
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
    )
    calls = forced.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_time"]
    assert fake.last().body["tool_choice"] == {
        "type": "tool",
        "name": "get_time",
        "disable_parallel_tool_use": True,
    }
    messages = [
        *USER,
        forced.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18:00"},
    ]
    reply = client.chat.completions.create(model="claude", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "system=-; texts=Hi; images=0; results=18:00"


def test_json_schema_uses_output_config(client: openai.OpenAI, fake: FakeAnthropicUpstream) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
    }
    reply = client.chat.completions.create(
        model="claude",
        messages=USER,
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
    )
    assert json.loads(reply.choices[0].message.content or "") == {"keys": ["city", "temp"]}
    assert fake.last().body["output_config"]["format"]["schema"] == schema


def test_image_data_url(client: openai.OpenAI, fake: FakeAnthropicUpstream) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    reply = client.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
    )
    assert "images=1" in (reply.choices[0].message.content or "")
    block = fake.last().body["messages"][0]["content"][1]
    assert block == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }


def test_upstream_errors_map_onto_openai(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="claude-error-400", messages=USER)
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="claude-error-429", messages=USER)
    assert limited.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.InternalServerError) as overloaded:
        client.chat.completions.create(model="claude-error-529", messages=USER)
    assert overloaded.value.status_code == 503
    assert overloaded.value.code == "overloaded"


def test_error_after_the_stream_started(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="claude-midstream", messages=USER, stream=True)
    text = ""
    with pytest.raises(openai.APIError, match="The model crashed"):
        for chunk in stream:
            text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert text == "".join(MIDSTREAM_PIECES)


def test_unsupported_parameters_are_refused_by_name(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="'seed' is not supported"):
        client.chat.completions.create(model="claude", messages=USER, seed=1)
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model="claude", messages=USER, temperature=1.5)
    with pytest.raises(openai.BadRequestError, match="chat only"):
        client.completions.create(model="claude", prompt="Hi")


def test_unsupported_parameters_can_be_dropped(
    client: openai.OpenAI, fake: FakeAnthropicUpstream
) -> None:
    client.chat.completions.create(model="claude-lenient", messages=USER, seed=1, temperature=1.5)
    assert "seed" not in fake.last().body
    assert fake.last().body["temperature"] == 1.0


def test_private_image_urls_are_refused_by_default(
    fake: FakeAnthropicUpstream, tmp_path: Path
) -> None:
    config = {
        "models": [{"name": "c", "provider": "anthropic", "base_url": fake.root, "api_key": "k"}]
    }
    url = f"{fake.root}/image.png"
    with run_gateway(config, tmp_path) as running:
        client = openai.OpenAI(base_url=running.v1, api_key="x", max_retries=0)
        content = [{"type": "image_url", "image_url": {"url": url}}]
        with pytest.raises(openai.BadRequestError, match="private or loopback"):
            client.chat.completions.create(
                model="c", messages=[{"role": "user", "content": content}]
            )  # type: ignore[list-item]


# -- the inbound Anthropic API, through the Anthropic SDK --------------------------------------


@pytest.fixture(scope="module")
def claude_client(relay: Running) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=relay.url, api_key="x", max_retries=0)


@pytest.mark.parametrize("model", ["claude", "fake-model", "local"])
def test_messages_api_over_any_backend(gateway: Running, relay: Running, model: str) -> None:
    url = relay.url if model == "claude" else gateway.url
    client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0)
    reply = client.messages.create(
        model=model, max_tokens=16, system="Be terse.", messages=[{"role": "user", "content": "Hi"}]
    )
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.content and reply.content[0].type == "text" and reply.content[0].text
    assert reply.stop_reason in ("end_turn", "max_tokens")
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0

    with client.messages.stream(
        model=model, max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].type == "text" and final.content[0].text == text
    assert final.usage.output_tokens > 0


def test_messages_api_tool_use_round_trip(claude_client: anthropic.Anthropic) -> None:
    tools = [
        {"name": t["function"]["name"], "input_schema": t["function"]["parameters"]} for t in TOOLS
    ]
    with claude_client.messages.stream(
        model="claude",
        max_tokens=64,
        messages=[{"role": "user", "content": "Hi"}],
        tools=tools,  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"city": "Paris"}),
    ]
    assert final.stop_reason == "tool_use"
    reply = claude_client.messages.create(
        model="claude",
        max_tokens=64,
        tools=tools,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [u.model_dump() for u in uses]},  # type: ignore[misc]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": uses[0].id, "content": "18C"},
                    {"type": "tool_result", "tool_use_id": uses[1].id, "content": "noon"},
                ],
            },
        ],
    )
    assert reply.content[0].type == "text"
    assert reply.content[0].text == "system=-; texts=Hi; images=0; results=18C/noon"


def test_messages_api_errors_in_anthropic_shape(claude_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as limited:
        claude_client.messages.create(
            model="claude-error-429", max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
        )
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError):
        claude_client.messages.create(
            model="nope", max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
        )
    with pytest.raises(anthropic.BadRequestError):
        claude_client.messages.create(model="claude", max_tokens=0, messages=[])


def test_messages_api_mid_stream_error(claude_client: anthropic.Anthropic) -> None:
    stream = claude_client.messages.stream(
        model="claude-midstream", max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
    )
    with pytest.raises(anthropic.APIStatusError, match="The model crashed"), stream as events:
        for _ in events:
            pass


def test_count_tokens(claude_client: anthropic.Anthropic, gateway: Running) -> None:
    counted = claude_client.messages.count_tokens(
        model="claude", messages=[{"role": "user", "content": "Hi"}]
    )
    assert counted.input_tokens == 9
    local = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
    assert (
        local.messages.count_tokens(
            model="local", messages=[{"role": "user", "content": "Hi"}]
        ).input_tokens
        > 0
    )
    with pytest.raises(anthropic.BadRequestError, match="cannot count tokens"):
        local.messages.count_tokens(
            model="fake-model", messages=[{"role": "user", "content": "Hi"}]
        )


def test_messages_api_translates_every_field(gateway: Running, upstream: FakeUpstream) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
    pdf = base64.b64encode(b"%PDF-1.4").decode()
    client.messages.create(
        model="fake-model",
        max_tokens=20,
        system=[{"type": "text", "text": "Be terse."}],
        stop_sequences=["END"],
        metadata={"user_id": "u1"},
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        extra_body={
            "temperature": 0.5,
            "top_k": 5,
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        },
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/a.png"},
                    },
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "text", "text": "Seen."},
                ],
            },
            {"role": "user", "content": "And?"},
        ],
    )
    sent = upstream.last().body
    assert sent["messages"][0] == {"role": "system", "content": "Be terse."}
    parts = sent["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "file"]
    assert parts[1]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
    assert parts[2]["image_url"]["url"] == "https://example.com/a.png"
    assert sent["messages"][2] == {"role": "assistant", "content": "Seen."}
    assert (sent["stop"], sent["user"], sent["temperature"], sent["top_k"]) == (
        ["END"],
        "u1",
        0.5,
        5,
    )
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("required", False)
    assert sent["response_format"]["type"] == "json_schema"


def test_messages_api_refuses_what_it_cannot_serve(gateway: Running) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
    user = [{"role": "user", "content": "Hi"}]
    with pytest.raises(anthropic.BadRequestError, match="thinking"):
        client.messages.create(
            model="fake-model",
            max_tokens=2000,
            messages=user,  # type: ignore[arg-type]
            thinking={"type": "enabled", "budget_tokens": 1024},
        )
    with pytest.raises(anthropic.BadRequestError, match="tool_choice"):
        client.messages.create(
            model="fake-model",
            max_tokens=20,
            messages=user,  # type: ignore[arg-type]
            tools=[{"name": "t", "input_schema": {"type": "object"}}],
            tool_choice={"type": "sometimes"},  # type: ignore[typeddict-item]
        )
