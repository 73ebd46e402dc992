"""The Ollama adapter, driven by the official ``openai`` SDK through the gateway to a fake
Ollama that speaks the native ``/api/chat``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from .conftest import Running, fake_models, run_gateway
from .fakes.ollama_upstream import FakeOllamaUpstream
from .fakes.scenario import (
    COMPLETION_TOKENS,
    MIDSTREAM_MESSAGE,
    MIDSTREAM_PIECES,
    PROMPT_TOKENS,
    TOOL_ARGUMENTS,
    View,
    function_tool,
    summary,
)

KEY = "sk-fake"
IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image").decode()
HI = [{"role": "user", "content": "Hi"}]


TOOLS: Any = [function_tool("get_weather"), function_tool("get_time")]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllamaUpstream]:
    with FakeOllamaUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    fake: FakeOllamaUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    model = fake_models("ollama", fake.root)

    config = {
        "models": [
            model("ollama-chat", "chat-model", api_key=KEY),
            model("ollama-keyless", "chat-model"),
            model("ollama-lenient", "chat-model", api_key=KEY, drop_unsupported_params=True),
            model("ollama-400", "error-400", api_key=KEY),
            model("ollama-429", "error-429", api_key=KEY),
            model("ollama-503", "error-503", api_key=KEY),
            model("ollama-midstream", "midstream-error", api_key=KEY),
        ]
    }
    with run_gateway(config, tmp_path_factory.mktemp("ollama")) as running:
        yield running


@pytest.fixture(scope="module")
def client(gateway: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key="x", max_retries=0, timeout=60)


def chat(client: openai.OpenAI, **fields: Any) -> Any:
    return client.chat.completions.create(**{"model": "ollama-chat", "messages": HI, **fields})


def streamed(client: openai.OpenAI, **fields: Any) -> list[Any]:
    return list(chat(client, stream=True, **fields))


def test_plain_text(client: openai.OpenAI, fake: FakeOllamaUpstream) -> None:
    reply = chat(client)
    choice = reply.choices[0]
    assert choice.message.content == summary(View(texts=["Hi"]))
    assert choice.message.tool_calls is None and choice.finish_reason == "stop"
    assert reply.model == "ollama-chat"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (9, 7)
    assert reply.usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
    sent = fake.last()
    assert sent.path == "/api/chat" and sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {
        "model": "chat-model",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": False,
    }


def test_no_key_sends_no_authorization(client: openai.OpenAI, fake: FakeOllamaUpstream) -> None:
    reply = chat(client, model="ollama-keyless")
    assert reply.choices[0].message.content == summary(View(texts=["Hi"]))
    assert "Authorization" not in fake.last().headers


def test_streamed_text_matches_the_whole_answer(
    client: openai.OpenAI, fake: FakeOllamaUpstream
) -> None:
    chunks = streamed(client)
    assert fake.last().body["stream"] is True
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == chat(client).choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks] == [None] * (len(chunks) - 1) + ["stop"]
    assert all(c.usage is None for c in chunks)  # not asked for


def test_system_prompt_and_multi_turn(client: openai.OpenAI, fake: FakeOllamaUpstream) -> None:
    reply = chat(
        client,
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "!"}],
            },
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Weather?"},
        ],
    )
    view = View(system=["Be terse.", "Use French."], texts=["Hi!", "Hello.", "Weather?"])
    assert reply.choices[0].message.content == summary(view)
    roles = [m["role"] for m in fake.last().body["messages"]]
    assert roles == ["system", "system", "user", "assistant", "user"]


def test_tool_round_trip(client: openai.OpenAI, fake: FakeOllamaUpstream) -> None:
    first = chat(
        client,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=TOOLS[:1],
    )
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.content is None
    assert calls is not None and len(calls) == 1
    assert calls[0].id.startswith("call_") and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == TOOL_ARGUMENTS
    reply = chat(
        client,
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [calls[0].model_dump()]},
            {"role": "tool", "tool_call_id": calls[0].id, "content": "11 degrees"},
        ],
        tools=TOOLS[:1],
    )
    assert reply.choices[0].message.content == summary(
        View(texts=["Weather?"], results=["11 degrees"])
    )
    assert reply.choices[0].finish_reason == "stop"
    sent = fake.last().body["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS}}],
    }
    assert sent[2] == {"role": "tool", "content": "11 degrees", "tool_name": "get_weather"}
    assert fake.last().body["tools"] == TOOLS[:1]


def test_streamed_parallel_tool_calls(client: openai.OpenAI) -> None:
    tools = TOOLS
    chunks = streamed(client, tools=tools)
    deltas = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
    assert [d.index for d in deltas] == [0, 1]
    assert [d.function.name for d in deltas] == ["get_weather", "get_time"]
    assert all(d.id and d.id.startswith("call_") for d in deltas)
    assert [json.loads(d.function.arguments) for d in deltas] == [TOOL_ARGUMENTS] * 2
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    whole = chat(client, tools=tools).choices[0]
    assert whole.finish_reason == "tool_calls"
    assert [(c.function.name, c.function.arguments) for c in whole.message.tool_calls or ()] == [
        (d.function.name, d.function.arguments) for d in deltas
    ]


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "get_time"}}]
)
def test_forcing_a_tool_is_refused(client: openai.OpenAI, choice: Any) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        chat(
            client,
            tools=TOOLS,
            tool_choice=choice,
        )
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == "tool_choice"
    assert error["code"] == "unsupported_parameter" and "ollama" in error["message"]


def test_tool_choice_none_and_auto(client: openai.OpenAI, fake: FakeOllamaUpstream) -> None:
    reply = chat(client, tools=TOOLS[:1], tool_choice="none")
    assert reply.choices[0].message.content == summary(View(texts=["Hi"]))
    assert "tools" not in fake.last().body and "tool_choice" not in fake.last().body
    reply = chat(client, tools=TOOLS[:1], tool_choice="auto")
    assert reply.choices[0].finish_reason == "tool_calls"
    assert "tool_choice" not in fake.last().body


def test_parallel_tool_calls_false_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        chat(client, tools=TOOLS[:1], parallel_tool_calls=False)
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["param"] == "parallel_tool_calls"


def test_lenient_model_drops_what_ollama_cannot_do(
    client: openai.OpenAI, fake: FakeOllamaUpstream
) -> None:
    reply = chat(
        client,
        model="ollama-lenient",
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        n=2,
        user="u-1",
    )
    assert len(reply.choices) == 1 and reply.choices[0].finish_reason == "tool_calls"
    assert {"n", "user", "tool_choice"}.isdisjoint(fake.last().body)


def test_json_schema_response_format(client: openai.OpenAI, fake: FakeOllamaUpstream) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    }
    reply = chat(
        client,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema},
        },
    )
    assert json.loads(reply.choices[0].message.content or "") == {"keys": ["name", "age"]}
    assert fake.last().body["format"] == schema
    reply = chat(client, response_format={"type": "json_object"})
    assert fake.last().body["format"] == "json"
    assert reply.choices[0].message.content == summary(View(texts=["Hi"]))


def test_image_as_data_url(client: openai.OpenAI, fake: FakeOllamaUpstream) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}},
    ]
    reply = chat(client, messages=[{"role": "user", "content": content}])
    assert reply.choices[0].message.content == summary(View(texts=["What is this?"], images=1))
    assert fake.last().body["messages"] == [
        {"role": "user", "content": "What is this?", "images": [IMAGE]}
    ]


def test_audio_part_is_refused(client: openai.OpenAI) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(openai.BadRequestError) as refused:
        chat(client, messages=[{"role": "user", "content": [audio]}])
    assert isinstance(refused.value.body, dict) and "input_audio" in refused.value.body["param"]


def test_stream_usage_comes_once(client: openai.OpenAI) -> None:
    chunks = streamed(client, stream_options={"include_usage": True})
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1] and chunks[-1].choices == []
    counts = with_usage[0].usage
    assert (counts.prompt_tokens, counts.completion_tokens, counts.total_tokens) == (9, 7, 16)
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_sampling_parameters_go_into_options(
    client: openai.OpenAI, fake: FakeOllamaUpstream
) -> None:
    reply = chat(
        client,
        temperature=1.5,
        top_p=0.9,
        max_completion_tokens=50,
        stop="\n\n",
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        extra_body={
            "top_k": 5,
            "min_p": 0.05,
            "repetition_penalty": 1.1,
            "keep_alive": "5m",
            "options": {"num_ctx": 2048, "temperature": 0.1},
        },
    )
    assert reply.choices[0].finish_reason == "stop"
    body = fake.last().body
    assert body["options"] == {
        "temperature": 1.5,  # the request's own field wins over the same option
        "top_p": 0.9,
        "top_k": 5,
        "min_p": 0.05,
        "seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "repeat_penalty": 1.1,
        "num_predict": 50,
        "stop": ["\n\n"],
        "num_ctx": 2048,
    }
    assert body["keep_alive"] == "5m"


def test_length_finish(client: openai.OpenAI) -> None:
    assert chat(client, max_tokens=2).choices[0].finish_reason == "length"
    chunks = streamed(client, max_tokens=2)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_upstream_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        chat(client, model="ollama-400")
    assert raised.value.status_code == 400
    assert isinstance(raised.value.body, dict) and raised.value.body["message"] == "invalid request"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_429(client: openai.OpenAI, gateway: Running, stream: bool) -> None:
    with pytest.raises(openai.RateLimitError) as raised:
        if stream:
            streamed(client, model="ollama-429")
        else:
            chat(client, model="ollama-429")
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["message"] == "too many requests"
    # Ollama gives no retry information, so there is none to pass on.
    assert "retry-after" not in raised.value.response.headers


def test_upstream_503(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        chat(client, model="ollama-503")
    assert raised.value.status_code == 503


def test_midstream_error(client: openai.OpenAI, gateway: Running) -> None:
    seen: list[str] = []
    stream = chat(client, model="ollama-midstream", stream=True)
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "".join(MIDSTREAM_PIECES)
    assert MIDSTREAM_MESSAGE in raised.value.message
    raw = httpx.post(
        f"{gateway.v1}/chat/completions",
        json={"model": "ollama-midstream", "messages": HI, "stream": True},
    )
    events = [line for line in raw.text.splitlines() if line.startswith("data: {")]
    error = json.loads(events[-1].removeprefix("data: "))["error"]
    assert error["message"] == MIDSTREAM_MESSAGE and error["type"] == "server_error"


@pytest.mark.parametrize(
    ("field", "value"),
    [("n", 2), ("user", "u-1"), ("logprobs", True), ("logit_bias", {"1": 1})],
)
def test_unsupported_parameter_is_named(
    client: openai.OpenAI, fake: FakeOllamaUpstream, field: str, value: Any
) -> None:
    before = len(fake.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        chat(client, extra_body={field: value})
    body = refused.value.body
    assert isinstance(body, dict) and body["param"] == field
    assert body["code"] == "unsupported_parameter" and f"'{field}'" in body["message"]
    assert len(fake.requests) == before  # refused before anything went upstream
