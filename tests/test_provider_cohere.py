"""The Cohere adapter, driven by the official OpenAI SDK through the gateway against the
fake Cohere v2 Chat upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llmrelay.chunks import StreamBuilder
from llmrelay.errors import UpstreamError
from llmrelay.providers.cohere import CohereProvider, CohereSpec

from .conftest import Running, fake_models, run_gateway
from .fakes.cohere_upstream import FakeCohereUpstream
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

HI: Any = [{"role": "user", "content": "Hi"}]
PNG = "data:image/png;base64,iVBORw0KGgo="


TOOLS: Any = [function_tool("get_weather"), function_tool("get_time")]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeCohereUpstream]:
    with FakeCohereUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    fake: FakeCohereUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    model = fake_models("cohere", fake.root, api_key="sk-fake")

    config = {
        "models": [
            model("cohere-chat", "chat-model"),
            model("cohere-drop", "chat-model", drop_unsupported_params=True),
            model("cohere-400", "error-400"),
            model("cohere-429", "error-429"),
            model("cohere-498", "error-498"),
            model("cohere-midstream", "midstream-error"),
        ]
    }
    with run_gateway(config, tmp_path_factory.mktemp("cohere")) as running:
        yield running


@pytest.fixture(scope="module")
def client(gateway: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key="x", max_retries=0, timeout=30)


def _stream(client: openai.OpenAI, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("model", "cohere-chat")
    return list(client.chat.completions.create(stream=True, **kwargs))


def _text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _finish(chunks: list[Any]) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


def test_plain_text(client: openai.OpenAI, fake: FakeCohereUpstream) -> None:
    reply = client.chat.completions.create(model="cohere-chat", messages=HI)
    assert reply.choices[0].message.content == summary(View(texts=["Hi"]))
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.tool_calls is None
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (9, 7)
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 0
    sent = fake.last()
    assert sent.path == "/v2/chat" and sent.headers["Authorization"] == "Bearer sk-fake"
    assert sent.body == {"model": "chat-model", "messages": [{"role": "user", "content": "Hi"}]}


def test_streamed_text_matches_the_whole_answer(
    client: openai.OpenAI, fake: FakeCohereUpstream
) -> None:
    whole = client.chat.completions.create(model="cohere-chat", messages=HI)
    chunks = _stream(client, messages=HI)
    assert _text(chunks) == whole.choices[0].message.content
    assert _finish(chunks) == ["stop"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.usage is None for c in chunks)
    assert fake.last().body["stream"] is True and "stream_options" not in fake.last().body


def test_system_prompt_and_multi_turn(client: openai.OpenAI, fake: FakeCohereUpstream) -> None:
    messages: Any = [
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "How "}, {"type": "text", "text": "are you?"}],
        },
    ]
    reply = client.chat.completions.create(model="cohere-chat", messages=messages)
    expected = View(system=["Be terse.", "Be kind."], texts=["Hi", "Hello.", "How are you?"])
    assert reply.choices[0].message.content == summary(expected)
    assert [m["role"] for m in fake.last().body["messages"]] == [
        "system",
        "system",
        "user",
        "assistant",
        "user",
    ]


def test_tool_round_trip(client: openai.OpenAI, fake: FakeCohereUpstream) -> None:
    first = client.chat.completions.create(
        model="cohere-chat", messages=HI, tools=TOOLS[:1], tool_choice="auto"
    )
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.content is None
    calls = first.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name) for c in calls] == [("get_weather_1", "get_weather")]
    assert json.loads(calls[0].function.arguments) == TOOL_ARGUMENTS
    assert "tool_choice" not in fake.last().body  # auto is Cohere's default
    assert fake.last().body["tools"] == TOOLS[:1]

    messages: Any = [
        *HI,
        {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18C and sunny"},
    ]
    second = client.chat.completions.create(model="cohere-chat", messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == summary(
        View(texts=["Hi"], results=["18C and sunny"])
    )
    sent = fake.last().body["messages"]
    assert sent[1] == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "get_weather_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": calls[0].function.arguments},
            }
        ],
    }
    assert sent[2] == {"role": "tool", "tool_call_id": "get_weather_1", "content": "18C and sunny"}


def test_streamed_parallel_tool_calls(client: openai.OpenAI) -> None:
    # Cohere may always call tools in parallel, so asking for it explicitly is fine.
    chunks = _stream(client, messages=HI, tools=TOOLS, parallel_tool_calls=True)
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.id or ""
            entry["name"] += (call.function and call.function.name) or ""
            entry["arguments"] += (call.function and call.function.arguments) or ""
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert all(json.loads(c["arguments"]) == {"city": "Paris"} for c in calls.values())
    assert _finish(chunks) == ["tool_calls"]
    assert _text(chunks) == ""  # the tool plan is not content

    whole = client.chat.completions.create(model="cohere-chat", messages=HI, tools=TOOLS)
    assert whole.choices[0].finish_reason == "tool_calls"
    assert [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
        for c in whole.choices[0].message.tool_calls or []
    ] == [calls[0], calls[1]]


def test_required_and_none_tool_choices(client: openai.OpenAI, fake: FakeCohereUpstream) -> None:
    forced = client.chat.completions.create(
        model="cohere-chat", messages=HI, tools=TOOLS, tool_choice="required"
    )
    assert fake.last().body["tool_choice"] == "REQUIRED"
    assert len(forced.choices[0].message.tool_calls or []) == 2
    plain = client.chat.completions.create(
        model="cohere-chat", messages=HI, tools=TOOLS, tool_choice="none"
    )
    assert fake.last().body["tool_choice"] == "NONE"
    assert plain.choices[0].message.content == summary(View(texts=["Hi"]))
    assert plain.choices[0].finish_reason == "stop"


def test_named_tool_choice_offers_only_that_tool(
    client: openai.OpenAI, fake: FakeCohereUpstream
) -> None:
    named: Any = {"type": "function", "function": {"name": "get_time"}}
    reply = client.chat.completions.create(
        model="cohere-chat", messages=HI, tools=TOOLS, tool_choice=named
    )
    sent = fake.last().body
    assert sent["tool_choice"] == "REQUIRED"
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["get_time"]
    assert [c.function.name for c in reply.choices[0].message.tool_calls or []] == ["get_time"]
    missing: Any = {"type": "function", "function": {"name": "get_date"}}
    before = len(fake.requests)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="cohere-chat", messages=HI, tools=TOOLS, tool_choice=missing
        )
    body: Any = raised.value.body
    assert body["param"] == "tool_choice" and "get_date" in body["message"]
    assert len(fake.requests) == before


def test_json_schema_response_format(client: openai.OpenAI, fake: FakeCohereUpstream) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "minutes": {"type": "integer"}},
        "required": ["title"],
    }
    reply = client.chat.completions.create(
        model="cohere-chat",
        messages=HI,
        response_format={"type": "json_schema", "json_schema": {"name": "talk", "schema": schema}},
    )
    assert json.loads(reply.choices[0].message.content or "") == {"keys": ["title", "minutes"]}
    assert fake.last().body["response_format"] == {"type": "json_object", "json_schema": schema}
    client.chat.completions.create(
        model="cohere-chat", messages=HI, response_format={"type": "json_object"}
    )
    assert fake.last().body["response_format"] == {"type": "json_object"}


def test_response_format_with_tools_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="cohere-chat",
            messages=HI,
            tools=TOOLS,
            response_format={"type": "json_object"},
        )
    body: Any = raised.value.body
    assert body["param"] == "response_format" and "tools" in body["message"]


def test_image_as_data_url(client: openai.OpenAI, fake: FakeCohereUpstream) -> None:
    content: Any = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
    ]
    reply = client.chat.completions.create(
        model="cohere-chat", messages=[{"role": "user", "content": content}]
    )
    assert reply.choices[0].message.content == summary(View(texts=["What is this?"], images=1))
    assert fake.last().body["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": PNG, "detail": "low"},
    }


def test_include_usage_in_a_stream(client: openai.OpenAI) -> None:
    chunks = _stream(client, messages=HI, stream_options={"include_usage": True})
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1] and chunks[-1].choices == []
    counts = with_usage[0].usage
    assert (counts.prompt_tokens, counts.completion_tokens, counts.total_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        16,
    )


def test_sampling_parameters_are_renamed(client: openai.OpenAI, fake: FakeCohereUpstream) -> None:
    client.chat.completions.create(
        model="cohere-chat",
        messages=HI,
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=50,
        stop="END",
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        extra_body={"top_k": 40, "safety_mode": "OFF"},
    )
    sent = fake.last().body
    assert {k: v for k, v in sent.items() if k not in ("model", "messages")} == {
        "temperature": 0.3,
        "p": 0.9,
        "k": 40,
        "max_tokens": 50,
        "stop_sequences": ["END"],
        "seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "safety_mode": "OFF",  # a Cohere field the gateway does not know passes through
    }


def test_unknown_extra_field_reaches_the_upstream(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="cohere-chat", messages=HI, extra_body={"vendor_field": 1}
        )
    assert "vendor_field is not a valid field" in str(raised.value)


def test_unsupported_parameter_is_named(client: openai.OpenAI, fake: FakeCohereUpstream) -> None:
    cases: Any = (
        ({"n": 2}, "n"),
        ({"tools": TOOLS, "parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"logit_bias": {"1": 1}}, "logit_bias"),
    )
    for fields, field in cases:
        with pytest.raises(openai.BadRequestError) as raised:
            client.chat.completions.create(model="cohere-chat", messages=HI, extra_body=fields)
        body: Any = raised.value.body
        assert body["param"] == field and body["code"] == "unsupported_parameter"
        assert field in body["message"]
    reply = client.chat.completions.create(
        model="cohere-drop", messages=HI, n=2, extra_body={"logit_bias": {"1": 1}}
    )
    assert reply.choices[0].message.content == summary(View(texts=["Hi"]))
    assert set(fake.last().body) == {"model", "messages"}


def test_upstream_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="cohere-400", messages=HI)
    assert raised.value.status_code == 400
    assert (raised.value.body or {})["message"] == "error 400"  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True])
def test_rate_limit_keeps_retry_after(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="cohere-429", messages=HI, stream=stream)
    assert raised.value.response.headers["retry-after"] == "7"
    assert "per minute request limit" in str(raised.value)


def test_invalid_token_is_the_gateways_credentials(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="cohere-498", messages=HI)
    assert raised.value.status_code == 502
    assert (raised.value.body or {})["code"] == "upstream_authentication_failed"  # type: ignore[index]


def test_midstream_error(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="cohere-midstream", messages=HI, stream=True)
    texts: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            texts.append(chunk.choices[0].delta.content or "")
    assert "".join(texts) == "".join(MIDSTREAM_PIECES)
    assert MIDSTREAM_MESSAGE in str(raised.value)


def test_midstream_error_whole(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="cohere-midstream", messages=HI)
    assert MIDSTREAM_MESSAGE in str(raised.value)


# -- the translation alone, for what the fake never sends ----------------------------------


def _provider() -> CohereProvider:
    spec = CohereSpec(name="c", provider="cohere", api_key="k")  # type: ignore[arg-type]
    return CohereProvider(spec, None)  # type: ignore[arg-type]


def _event(kind: str, **payload: Any) -> dict[str, Any]:
    return {"type": kind, **payload}


def test_stream_skips_thinking_and_trailing_done_and_falls_back_to_billed_units() -> None:
    out = StreamBuilder("c")
    stream = _provider().translator(out)
    thinking = {"message": {"content": {"thinking": "hmm"}}}
    stream.feed(_event("content-delta", index=0, delta=thinking))
    assert out.take() == []
    text = {"message": {"content": {"text": "Hi"}}}
    stream.feed(_event("content-delta", index=1, delta=text))
    assert [chunk["choices"][0]["delta"] for chunk in out.take()] == [
        {"role": "assistant", "content": "Hi"}
    ]
    billed = {"billed_units": {"input_tokens": 3.0, "output_tokens": 2.0}}
    end = {"finish_reason": "MAX_TOKENS", "usage": billed}
    stream.feed(_event("message-end", delta=end))
    stream.feed(_event("content-delta", delta=text))  # nothing counts after the end
    assert stream.finished and out.take() == []
    closing = stream.out.end(with_usage=True)
    assert closing[0]["choices"][0]["finish_reason"] == "length"
    assert closing[1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


@pytest.mark.parametrize(("reason", "status"), [("ERROR", 502), ("TIMEOUT", 504)])
def test_failed_finish_reasons_raise(reason: str, status: int) -> None:
    provider = _provider()
    with pytest.raises(UpstreamError) as raised:
        provider.reply({"finish_reason": reason, "message": {"role": "assistant"}})
    assert raised.value.status_code == status
    stream = provider.translator(StreamBuilder("c"))
    with pytest.raises(UpstreamError) as raised:
        stream.feed(_event("message-end", delta={"finish_reason": reason}))
    assert raised.value.status_code == status and reason in str(raised.value)
