"""The Gemini adapter, driven by the official OpenAI SDK through the gateway against the fake
Gemini upstream: what goes out is checked on the fake's record, what comes back on the SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import aiohttp
import openai
import pytest

from llmrelay.errors import UpstreamError
from llmrelay.providers.gemini import GeminiProvider, GeminiSpec, _finish, _usage

from .conftest import Running, fake_models, run_gateway
from .fakes.gemini_upstream import RESPONSE_ID, FakeGeminiUpstream
from .fakes.scenario import (
    COMPLETION_TOKENS,
    MIDSTREAM_PIECES,
    PROMPT_TOKENS,
    TOOL_ARGUMENTS,
)

KEY = "sk-fake"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "description": "The time now"}}
PNG = "data:image/png;base64,iVBORw0KGgo="
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGeminiUpstream]:
    with FakeGeminiUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    fake: FakeGeminiUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    model = fake_models("gemini", fake.root, api_key=KEY)

    config = {
        "models": [
            model("gemini-chat", "chat-model"),
            model("gemini-lenient", "chat-model", drop_unsupported_params=True),
            *(model(f"gemini-{status}", f"error-{status}") for status in (400, 429, 503)),
            model("gemini-midstream", "midstream-error"),
        ]
    }
    with run_gateway(config, tmp_path_factory.mktemp("gemini")) as running:
        yield running


@pytest.fixture(scope="module")
def client(gateway: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key="x", max_retries=0, timeout=60)


def chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    kwargs.setdefault("model", "gemini-chat")
    kwargs.setdefault("messages", HI)
    return client.chat.completions.create(**kwargs)


def collect(stream: Any) -> tuple[str, dict[int, dict[str, Any]], str | None, list[Any]]:
    """A stream's text, tool calls by index, finish reason and usage chunks."""
    text, calls, finish, usages = "", {}, None, []
    for chunk in stream:
        if chunk.usage is not None:
            usages.append(chunk)
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            text += choice.delta.content or ""
            for fragment in choice.delta.tool_calls or ():
                call = calls.setdefault(fragment.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = fragment.id or call["id"]
                call["name"] += fragment.function.name or ""
                call["arguments"] += fragment.function.arguments or ""
    return text, calls, finish, usages


def test_plain_text(client: openai.OpenAI, fake: FakeGeminiUpstream) -> None:
    reply = chat(client)
    assert reply.choices[0].message.content == "system=-; texts=Hi; images=0; results=-"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.id == RESPONSE_ID
    assert reply.model == "gemini-chat"
    assert reply.usage.prompt_tokens == PROMPT_TOKENS
    assert reply.usage.completion_tokens == COMPLETION_TOKENS
    assert reply.usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
    sent = fake.last()
    assert sent.path == "/v1beta/models/chat-model:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.body == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


def test_streamed_text_reassembles_to_the_whole_answer(
    client: openai.OpenAI, fake: FakeGeminiUpstream
) -> None:
    whole = chat(client).choices[0].message.content
    text, calls, finish, usages = collect(chat(client, stream=True))
    assert text == whole
    assert (calls, finish, usages) == ({}, "stop", [])
    assert fake.last().path == "/v1beta/models/chat-model:streamGenerateContent"


def test_system_prompt_and_turns(client: openai.OpenAI, fake: FakeGeminiUpstream) -> None:
    reply = chat(
        client,
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": "Really."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": [{"type": "text", "text": "How are you?"}]},
        ],
    )
    assert reply.choices[0].message.content == (
        "system=Be terse. Really.; texts=Hi/Hello!/How are you?; images=0; results=-"
    )
    body = fake.last().body
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}, {"text": "Really."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]


def test_tool_round_trip(client: openai.OpenAI, fake: FakeGeminiUpstream) -> None:
    question = {"role": "user", "content": "Weather and time?"}
    reply = chat(client, messages=[question], tools=[WEATHER, TIME])
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    calls = message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert all(json.loads(c.function.arguments) == TOOL_ARGUMENTS for c in calls)
    assert all(c.id.startswith("call_") for c in calls) and calls[0].id != calls[1].id
    declared = fake.last().body["tools"][0]["functionDeclarations"]
    assert declared[0]["parametersJsonSchema"] == WEATHER["function"]["parameters"]  # type: ignore[index]
    assert declared[1] == {"name": "get_time", "description": "The time now"}
    assert fake.last().body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}

    # The results come back in the other order: they are matched by id, sent by name.
    reply = chat(
        client,
        messages=[
            question,
            {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]},
            {"role": "tool", "tool_call_id": calls[1].id, "content": "noon"},
            {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp_c": 18}'},
        ],
        tools=[WEATHER, TIME],
    )
    assert reply.choices[0].message.content == (
        'system=-; texts=Weather and time?; images=0; results=noon/{"temp_c": 18}'
    )
    assert reply.choices[0].finish_reason == "stop"
    contents = fake.last().body["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": TOOL_ARGUMENTS}},
            {"functionCall": {"name": "get_time", "args": TOOL_ARGUMENTS}},
        ],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_time", "response": {"output": "noon"}}},
            {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}},
        ],
    }


def test_legacy_function_result_goes_by_its_name(
    client: openai.OpenAI, fake: FakeGeminiUpstream
) -> None:
    reply = chat(
        client,
        messages=[
            *HI,
            {"role": "assistant", "content": "Checking."},
            {"role": "function", "name": "get_weather", "content": "18C"},
        ],
    )
    assert reply.choices[0].message.content == (
        "system=-; texts=Hi/Checking.; images=0; results=18C"
    )
    assert fake.last().body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}}
    ]


def test_tool_result_for_an_unknown_call_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        chat(client, messages=[*HI, {"role": "tool", "tool_call_id": "call_x", "content": "1"}])
    assert "call_x" in raised.value.message


def test_streamed_parallel_tool_calls(client: openai.OpenAI) -> None:
    whole = chat(client, tools=[WEATHER, TIME])
    text, calls, finish, _ = collect(chat(client, tools=[WEATHER, TIME], stream=True))
    assert text == "" and finish == "tool_calls"
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert all(json.loads(c["arguments"]) == {"city": "Paris"} for c in calls.values())
    assert all(c["id"].startswith("call_") for c in calls.values())
    expected = [
        (c.function.name, c.function.arguments) for c in whole.choices[0].message.tool_calls
    ]
    assert [(calls[i]["name"], calls[i]["arguments"]) for i in (0, 1)] == expected
    assert whole.choices[0].finish_reason == finish


def test_tool_choice(client: openai.OpenAI, fake: FakeGeminiUpstream) -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    reply = chat(client, tools=[WEATHER, TIME], tool_choice=named)
    assert [c.function.name for c in reply.choices[0].message.tool_calls] == ["get_time"]
    assert fake.last().body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}
    }
    reply = chat(client, tools=[WEATHER, TIME], tool_choice="required")
    assert len(reply.choices[0].message.tool_calls) == 2
    assert fake.last().body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    reply = chat(client, tools=[WEATHER, TIME], tool_choice="none")
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content == "system=-; texts=Hi; images=0; results=-"
    assert fake.last().body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}


def test_json_schema(client: openai.OpenAI, fake: FakeGeminiUpstream) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
        "required": ["city", "temp"],
        "additionalProperties": False,
    }
    reply = chat(
        client,
        response_format={
            "type": "json_schema",
            # Not strict: the fake's answer, the schema's keys, does not fit the schema.
            "json_schema": {"name": "weather", "schema": schema},
        },
    )
    assert json.loads(reply.choices[0].message.content) == {"keys": ["city", "temp"]}
    config = fake.last().body["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}

    chat(client, response_format={"type": "json_object"})
    assert fake.last().body["generationConfig"] == {"responseMimeType": "application/json"}


def test_image_data_url(client: openai.OpenAI, fake: FakeGeminiUpstream) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": PNG}},
    ]
    reply = chat(client, messages=[{"role": "user", "content": content}])
    assert reply.choices[0].message.content == (
        "system=-; texts=What is this?; images=1; results=-"
    )
    assert fake.last().body["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": PNG.partition(",")[2]}
    }


def test_stream_usage_comes_once(client: openai.OpenAI) -> None:
    stream = chat(client, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    usages = [c for c in chunks if c.usage is not None]
    assert len(usages) == 1 and usages[0] is chunks[-1] and usages[0].choices == []
    counts = usages[0].usage
    assert (counts.prompt_tokens, counts.completion_tokens, counts.total_tokens) == (9, 7, 16)


def test_sampling_parameters_reach_generation_config(
    client: openai.OpenAI, fake: FakeGeminiUpstream
) -> None:
    chat(
        client,
        temperature=1.5,
        top_p=0.9,
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        max_completion_tokens=50,
        stop="END",
        extra_body={
            "top_k": 40,
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}],
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}},
        },
    )
    body = fake.last().body
    assert body["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 0},
        "temperature": 1.5,
        "topP": 0.9,
        "topK": 40,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "maxOutputTokens": 50,
        "stopSequences": ["END"],
    }
    assert body["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}]
    chat(client, max_tokens=20, stop=["a", "b"])
    assert fake.last().body["generationConfig"] == {
        "maxOutputTokens": 20,
        "stopSequences": ["a", "b"],
    }


def test_upstream_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        chat(client, model="gemini-400")
    assert raised.value.status_code == 400
    assert raised.value.code == "invalid_argument"
    assert "Upstream says 400." in raised.value.message


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_429_keeps_the_retry_delay(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.RateLimitError) as raised:
        chat(client, model="gemini-429", stream=stream)
    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.code == "resource_exhausted"


def test_upstream_503_stays_503(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        chat(client, model="gemini-503")
    assert raised.value.status_code == 503
    assert raised.value.code == "unavailable"


def test_midstream_error(client: openai.OpenAI) -> None:
    seen = ""
    with pytest.raises(openai.APIError) as raised:
        for chunk in chat(client, model="gemini-midstream", stream=True):
            seen += "".join(c.delta.content or "" for c in chunk.choices)
    assert seen == "".join(MIDSTREAM_PIECES)
    assert "The model crashed." in raised.value.message


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"user": "u-1"}, "user"),
        ({"extra_body": {"logit_bias": {"1": 5}}}, "logit_bias"),
        ({"tools": [WEATHER], "parallel_tool_calls": False}, "parallel_tool_calls"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}
                ]
            },
            "messages[].content[].file",
        ),
    ],
)
def test_unsupported_parameters_are_refused_by_name(
    client: openai.OpenAI, fake: FakeGeminiUpstream, params: dict[str, Any], name: str
) -> None:
    before = len(fake.requests)
    with pytest.raises(openai.BadRequestError) as raised:
        chat(client, **params)
    assert raised.value.param == name
    assert raised.value.code == "unsupported_parameter"
    assert f"'{name}'" in raised.value.message
    assert len(fake.requests) == before


def test_drop_unsupported_params_keeps_them_from_the_upstream(
    client: openai.OpenAI, fake: FakeGeminiUpstream
) -> None:
    reply = chat(client, model="gemini-lenient", n=2, user="u", extra_body={"logit_bias": {"1": 5}})
    assert len(reply.choices) == 1
    assert fake.last().body == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


def test_pdf_and_audio_go_inline(client: openai.OpenAI, fake: FakeGeminiUpstream) -> None:
    content = [
        {
            "type": "file",
            "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"},
        },
        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
    ]
    chat(client, messages=[{"role": "user", "content": content}])
    assert fake.last().body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
    ]


# -- what the fake does not exercise: thinking and cached counts, filters, key errors ---------


def test_usage_counts_thinking_and_cache() -> None:
    counts = {
        "promptTokenCount": 100,
        "cachedContentTokenCount": 60,
        "candidatesTokenCount": 10,
        "thoughtsTokenCount": 30,
        "totalTokenCount": 140,
    }
    assert _usage(counts) == {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "total_tokens": 140,
        "prompt_tokens_details": {"cached_tokens": 60},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }


@pytest.mark.parametrize(
    ("native", "calls", "reason"),
    [
        ({"candidates": [{"finishReason": "STOP"}]}, False, "stop"),
        ({"candidates": [{"finishReason": "STOP"}]}, True, "tool_calls"),
        ({"candidates": [{"finishReason": "MAX_TOKENS"}]}, True, "length"),
        ({"candidates": [{"finishReason": "SAFETY"}]}, False, "content_filter"),
        ({"candidates": [{"finishReason": "RECITATION"}]}, False, "content_filter"),
        ({"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL"}]}, False, "stop"),
        ({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}, False, "content_filter"),
        ({"candidates": [{"content": {"parts": [{"text": "x"}]}}]}, False, None),
    ],
)
def test_finish_reasons(native: dict[str, Any], calls: bool, reason: str | None) -> None:
    assert _finish(native, calls) == reason


def provider() -> GeminiProvider:
    spec = GeminiSpec(name="g", provider="gemini", api_key=KEY)  # type: ignore[arg-type]
    return GeminiProvider(spec, cast(aiohttp.ClientSession, None))


def test_a_blocked_prompt_is_an_empty_filtered_answer() -> None:
    native = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
    }
    reply = provider().reply(native)
    assert reply["choices"][0]["message"]["content"] == ""
    assert reply["choices"][0]["finish_reason"] == "content_filter"
    assert reply["usage"]["prompt_tokens"] == 5


def test_thought_parts_are_not_content() -> None:
    native = {
        "candidates": [
            {
                "content": {"parts": [{"text": "hmm", "thought": True}, {"text": "42"}]},
                "finishReason": "STOP",
            }
        ]
    }
    assert provider().reply(native)["choices"][0]["message"]["content"] == "42"


def test_error_mapping() -> None:
    def error(status: int, body: Any, headers: dict[str, str] | None = None) -> UpstreamError:
        return provider().error(status, json.dumps(body).encode(), headers or {})

    retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}
    quota = {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED", "details": [retry]}
    mapped = error(429, [{"error": quota}])  # the array-streaming mode's wrapping
    assert (mapped.status_code, mapped.message, mapped.headers) == (
        429,
        "Quota",
        {"retry-after": "2"},
    )
    assert error(429, {"error": quota}, {"Retry-After": "9"}).headers == {"Retry-After": "9"}
    bad_key = {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
        ],
    }
    mapped = error(400, {"error": bad_key})
    assert (mapped.status_code, mapped.code) == (502, "upstream_authentication_failed")
    assert provider().error(502, b"<html>Bad gateway</html>", {}).status_code == 502
    odd = {**quota, "details": [{**retry, "retryDelay": "soon"}]}
    assert error(429, {"error": odd}).headers == {}
