"""The embedded llama.cpp model ("local"), driven through the official OpenAI SDK.

The bundled Gemma 3 270M base model writes junk, so these tests check shapes, types, counts
and constraints (grammars, stop sequences, token limits), never what the text says. Requests
that must be reproducible use temperature 0; every generation is kept to a few tokens.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import jsonschema
import openai
import pytest

from .fakes.openai_upstream import ANSWER

if TYPE_CHECKING:
    from .conftest import Running

LOCAL = "local"
DEFAULT_MAX_TOKENS = 16  # the gateway fixture's ``max_tokens`` for "local"
N_CTX = 2048

RECIPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 10},
        "minutes": {"type": "integer"},
    },
    "required": ["name", "minutes"],
    "additionalProperties": False,
}
RECIPE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": "recipe", "schema": RECIPE_SCHEMA, "strict": True},
}
RECIPE_PROMPT = 'Give a recipe as JSON, for example {"name": "soup", "minutes": 5}.'

WEATHER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 12}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": WEATHER_PARAMETERS,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The local time in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
]
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
WEATHER_QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def check_usage(usage: Any, max_completion: int) -> None:
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= max_completion
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def collect_stream(stream: Any) -> tuple[list[Any], str]:
    """All chunks of a streamed chat completion, and the text of choice 0."""
    chunks = list(stream)
    text = "".join(
        choice.delta.content or ""
        for chunk in chunks
        for choice in chunk.choices
        if choice.index == 0
    )
    return chunks, text


# -- chat, whole and streamed --------------------------------------------------------------


def test_chat_whole_has_openai_shape_and_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=LOCAL, messages=user("Say hello."))

    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert reply.model == LOCAL
    assert isinstance(reply.created, int) and reply.created > 0
    assert len(reply.choices) == 1
    choice = reply.choices[0]
    assert choice.index == 0
    assert choice.finish_reason in ("stop", "length")
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.message.tool_calls is None
    # Without max_tokens the model's configured default (16) applies.
    check_usage(reply.usage, DEFAULT_MAX_TOKENS)


def test_chat_max_completion_tokens_limits_the_answer(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=LOCAL,
        messages=user("Write a long story about a cat."),
        max_completion_tokens=3,
        temperature=0,
    )
    check_usage(reply.usage, 3)


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=LOCAL,
        messages=user("Write a long story about a cat."),
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks, text = collect_stream(stream)

    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert all(chunk.model == LOCAL for chunk in chunks)
    with_choices = [chunk for chunk in chunks if chunk.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    content_deltas = [c for c in with_choices if c.choices[0].delta.content]
    assert len(content_deltas) >= 3
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in with_choices if c.choices[0].finish_reason]
    assert finishes == [with_choices[-1].choices[0].finish_reason]
    assert finishes[0] in ("stop", "length")
    # The usage chunk comes last, with no choices, and only it carries usage.
    last = chunks[-1]
    assert last.choices == []
    check_usage(last.usage, 12)
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_chat_stream_without_include_usage_sends_no_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=LOCAL, messages=user("Tell me a story."), max_tokens=8, temperature=0, stream=True
    )
    chunks, text = collect_stream(stream)

    assert text
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_temperature_zero_is_deterministic(client: openai.OpenAI) -> None:
    def ask() -> str | None:
        reply = client.chat.completions.create(
            model=LOCAL, messages=user("Name three colours."), max_tokens=10, temperature=0
        )
        return reply.choices[0].message.content

    first, second = ask(), ask()
    assert first
    assert first == second


def test_streamed_text_matches_the_whole_reply_at_temperature_zero(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {
        "model": LOCAL,
        "messages": user("Name three colours."),
        "max_tokens": 10,
        "temperature": 0,
    }
    whole = client.chat.completions.create(**kwargs)
    _, streamed = collect_stream(client.chat.completions.create(stream=True, **kwargs))
    assert streamed == whole.choices[0].message.content


# -- constrained output ----------------------------------------------------------------------


def test_json_schema_whole(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=LOCAL,
        messages=user(RECIPE_PROMPT),
        response_format=RECIPE_FORMAT,
        max_tokens=24,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    recipe = json.loads(choice.message.content or "")
    jsonschema.validate(recipe, RECIPE_SCHEMA)
    assert isinstance(recipe["name"], str) and isinstance(recipe["minutes"], int)


def test_a_structured_job_on_the_local_model(gateway: Running) -> None:
    """The grammar makes the local model's JSON valid, and the job completes with it."""
    body = {
        "model": LOCAL,
        "messages": user(RECIPE_PROMPT),
        "response_format": RECIPE_FORMAT,
        "max_tokens": 24,
        "temperature": 0,
    }
    with httpx.Client(base_url=gateway.v1, timeout=30) as http:
        job = http.post("/jobs", json=body).json()
        deadline = time.monotonic() + 60
        while job["status"] not in ("completed", "failed", "cancelled"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
            job = http.get(f"/jobs/{job['id']}").json()
    assert job["status"] == "completed", job["error"]
    jsonschema.validate(job["output"], RECIPE_SCHEMA)
    assert job["history"] == [{"attempt": 1, "outcome": "valid", "errors": []}]
    assert job["usage"]["completion_tokens"] <= 24


def test_json_schema_streamed(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=LOCAL,
        messages=user(RECIPE_PROMPT),
        response_format=RECIPE_FORMAT,
        max_tokens=24,
        temperature=0,
        stream=True,
    )
    chunks, text = collect_stream(stream)
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    assert chunks[-1].choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(text), RECIPE_SCHEMA)


def test_json_object(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=LOCAL,
        messages=user('Answer in JSON, like {"colour": "red"}.'),
        response_format={"type": "json_object"},
        max_tokens=24,
        temperature=0,
    )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_usage_counts_the_generated_tokens_under_a_grammar(client: openai.OpenAI) -> None:
    messages = user("A recipe")
    plain = client.chat.completions.create(
        model=LOCAL, messages=messages, max_tokens=1, temperature=0
    )
    assert plain.usage is not None
    # Not strict, so the gateway returns the cut-off JSON rather than refusing it.
    grammar_only = {**RECIPE_FORMAT, "json_schema": {"name": "recipe", "schema": RECIPE_SCHEMA}}
    constrained = client.chat.completions.create(
        model=LOCAL,
        messages=messages,
        response_format=grammar_only,  # type: ignore[arg-type]
        max_tokens=6,
        temperature=0,
    )
    # Six tokens cannot finish the recipe object, so generation stops at the limit.
    assert constrained.choices[0].finish_reason == "length"
    assert constrained.usage is not None
    assert constrained.usage.completion_tokens == 6
    assert constrained.usage.prompt_tokens == plain.usage.prompt_tokens


# -- tools -----------------------------------------------------------------------------------


def force_weather(client: openai.OpenAI, **extra: Any) -> Any:
    """A request whose tool_choice forces a call of get_weather."""
    return client.chat.completions.create(
        model=LOCAL,
        messages=WEATHER_QUESTION,
        tools=TOOLS,
        tool_choice=FORCE_WEATHER,
        max_tokens=24,
        temperature=0,
        **extra,
    )


def check_weather_call(call: Any) -> None:
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments, dict)
    jsonschema.validate(arguments, WEATHER_PARAMETERS)


def test_forced_tool_call_whole(client: openai.OpenAI) -> None:
    reply = force_weather(client)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    assert len(choice.message.tool_calls) == 1
    check_weather_call(choice.message.tool_calls[0])
    check_usage(reply.usage, 24)


def test_forced_tool_call_streamed(client: openai.OpenAI) -> None:
    stream = force_weather(client, stream=True)
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            # A forced call is never leaked as text.
            assert not choice.delta.content
            for fragment in choice.delta.tool_calls or ():
                call = calls.setdefault(fragment.index, {"id": None, "name": "", "arguments": ""})
                if fragment.id:
                    assert call["id"] is None
                    call["id"] = fragment.id
                if fragment.function and fragment.function.name:
                    call["name"] += fragment.function.name
                if fragment.function and fragment.function.arguments:
                    call["arguments"] += fragment.function.arguments
            finish = choice.finish_reason or finish

    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"].startswith("call_")
    assert calls[0]["name"] == "get_weather"
    arguments = json.loads(calls[0]["arguments"])
    assert isinstance(arguments, dict)
    jsonschema.validate(arguments, WEATHER_PARAMETERS)


def test_tool_result_round_trip(client: openai.OpenAI) -> None:
    first = force_weather(client)
    assert first.choices[0].message.tool_calls
    call = first.choices[0].message.tool_calls[0]
    messages: list[dict[str, Any]] = [
        *WEATHER_QUESTION,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 21}'},
    ]
    second = client.chat.completions.create(
        model=LOCAL, messages=messages, tools=TOOLS, max_tokens=12, temperature=0
    )
    choice = second.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    assert choice.message.role == "assistant"
    assert choice.message.content or choice.message.tool_calls
    check_usage(second.usage, 12)
    assert first.usage is not None and second.usage is not None
    # The call and its result are part of the second prompt.
    assert second.usage.prompt_tokens > first.usage.prompt_tokens


def test_tool_choice_naming_an_unknown_tool_is_rejected(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=LOCAL,
            messages=WEATHER_QUESTION,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_stock_price"}},
            max_tokens=4,
        )
    assert info.value.status_code == 400
    assert info.value.param == "tool_choice"


# -- sampling options ------------------------------------------------------------------------


def test_n_gives_that_many_choices(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=LOCAL, messages=user("Tell me a story."), n=2, max_tokens=6
    )
    assert [choice.index for choice in reply.choices] == [0, 1]
    for choice in reply.choices:
        assert choice.finish_reason in ("stop", "length")
        assert isinstance(choice.message.content, str)
    # Usage covers both generations.
    check_usage(reply.usage, 12)


def test_n_streamed_interleaves_indexes(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=LOCAL, messages=user("Tell me a story."), n=2, max_tokens=6, stream=True
    )
    finishes: dict[int, str] = {}
    roles: dict[int, str] = {}
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.role:
                roles[choice.index] = choice.delta.role
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert roles == {0: "assistant", 1: "assistant"}
    assert sorted(finishes) == [0, 1]
    assert set(finishes.values()) <= {"stop", "length"}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_stop_sequences_are_honoured(client: openai.OpenAI, stream: bool) -> None:
    stops = ["\n", "."]
    kwargs: dict[str, Any] = {
        "model": LOCAL,
        "messages": user("Write a long story about a cat."),
        "max_tokens": 20,
        "temperature": 0,
        "stop": stops,
    }
    if stream:
        chunks, text = collect_stream(client.chat.completions.create(stream=True, **kwargs))
        finish = chunks[-1].choices[0].finish_reason
    else:
        reply = client.chat.completions.create(**kwargs)
        text, finish = reply.choices[0].message.content or "", reply.choices[0].finish_reason
    assert finish in ("stop", "length")
    for stop in stops:
        assert stop not in text


def test_seed_is_accepted_and_reproducible(client: openai.OpenAI) -> None:
    def ask() -> str | None:
        reply = client.chat.completions.create(
            model=LOCAL, messages=user("Tell me a story."), max_tokens=8, temperature=1.0, seed=42
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
        return reply.choices[0].message.content

    first = ask()
    assert first
    assert ask() == first


# -- what the local model refuses ------------------------------------------------------------

IMAGE_MESSAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    }
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    ("param", "kwargs"),
    [
        ("logprobs", {"logprobs": True}),
        ("logprobs", {"top_logprobs": 2}),
        ("image_url", {"messages": IMAGE_MESSAGE}),
        ("frobnicate", {"extra_body": {"frobnicate": 1}}),
    ],
    ids=["logprobs", "top_logprobs", "image_url", "unknown_field"],
)
def test_unsupported_parameters_are_400s_naming_the_param(
    client: openai.OpenAI, param: str, kwargs: dict[str, Any], stream: bool
) -> None:
    request: dict[str, Any] = {"model": LOCAL, "messages": user("Hi"), "max_tokens": 4}
    request.update(kwargs)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(stream=stream, **request)
    error = info.value
    assert error.status_code == 400
    assert error.param == param
    assert error.code == "unsupported_parameter"
    assert error.type == "invalid_request_error"
    assert param in error.message


def test_unsupported_parameter_in_legacy_completions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=LOCAL, prompt="Hi", max_tokens=4, best_of=2)
    assert info.value.param == "best_of"
    assert info.value.code == "unsupported_parameter"


TOO_LONG = "word " * 3000  # about 3000 tokens, in a 2048-token context window


def test_prompt_longer_than_the_context_window_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=LOCAL, messages=user(TOO_LONG), max_tokens=4)
    assert info.value.code == "context_length_exceeded"
    assert info.value.param == "messages"


def test_streamed_prompt_longer_than_the_context_window_is_a_400(
    client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        stream = client.chat.completions.create(
            model=LOCAL, messages=user(TOO_LONG), max_tokens=4, stream=True
        )
        list(stream)
    assert info.value.code == "context_length_exceeded"


def test_legacy_prompt_longer_than_the_context_window_names_prompt(
    client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=LOCAL, prompt=TOO_LONG, max_tokens=4)
    assert info.value.code == "context_length_exceeded"
    assert info.value.param == "prompt"


def test_embeddings_are_not_available_locally(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=LOCAL, input="hello")
    assert info.value.status_code == 400
    assert info.value.param == "model"
    assert info.value.code == "model_not_supported"


# -- legacy completions ----------------------------------------------------------------------


def test_legacy_completion_whole(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=LOCAL, prompt="The cat", max_tokens=6, temperature=0)
    assert reply.object == "text_completion"
    assert reply.id.startswith("cmpl-")
    assert reply.model == LOCAL
    assert len(reply.choices) == 1
    choice = reply.choices[0]
    assert choice.index == 0
    assert isinstance(choice.text, str) and choice.text
    assert choice.finish_reason in ("stop", "length")
    check_usage(reply.usage, 6)


def test_legacy_completion_with_two_prompts(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model=LOCAL, prompt=["The cat", "A dog"], max_tokens=5, temperature=0
    )
    assert [choice.index for choice in reply.choices] == [0, 1]
    for choice in reply.choices:
        assert isinstance(choice.text, str)
        assert choice.finish_reason in ("stop", "length")
    check_usage(reply.usage, 10)


def test_legacy_completion_streamed(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model=LOCAL,
        prompt="The cat",
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(chunk.object == "text_completion" for chunk in chunks)
    texts = [chunk.choices[0].text for chunk in chunks if chunk.choices]
    assert sum(1 for text in texts if text) > 1
    assert "".join(texts)
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert len(finishes) == 1 and finishes[0] in ("stop", "length")
    assert chunks[-1].choices == []
    check_usage(chunks[-1].usage, 6)


def test_legacy_completion_streamed_with_two_prompts(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model=LOCAL, prompt=["The cat", "A dog"], max_tokens=4, temperature=0, stream=True
    )
    texts: dict[int, str] = {0: "", 1: ""}
    finishes: dict[int, str] = {}
    for chunk in stream:
        assert chunk.usage is None
        for choice in chunk.choices:
            texts[choice.index] += choice.text
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert sorted(finishes) == [0, 1]
    assert all(texts.values())


# -- tokenizer -------------------------------------------------------------------------------


def test_tokenize_and_detokenize_a_prompt(http: httpx.Client) -> None:
    prompt = "Hello world, this is a test."
    tokenized = http.post("/tokenize", json={"model": LOCAL, "prompt": prompt})
    assert tokenized.status_code == 200
    body = tokenized.json()
    assert body["count"] == len(body["tokens"]) > 0
    assert all(isinstance(token, int) for token in body["tokens"])
    assert body["max_model_len"] == N_CTX
    assert body["token_strs"] is None

    detokenized = http.post("/detokenize", json={"model": LOCAL, "tokens": body["tokens"]})
    assert detokenized.status_code == 200
    assert prompt in detokenized.json()["prompt"]


def test_tokenize_with_token_strings(http: httpx.Client) -> None:
    body = http.post(
        "/tokenize", json={"model": LOCAL, "prompt": "Hello world", "return_token_strs": True}
    ).json()
    assert len(body["token_strs"]) == body["count"]
    assert "Hello world" in "".join(body["token_strs"])


def test_tokenize_and_detokenize_messages(http: httpx.Client) -> None:
    question = "What is the capital of France?"
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": question},
    ]
    body = http.post("/tokenize", json={"model": LOCAL, "messages": messages}).json()
    assert body["count"] == len(body["tokens"]) > 0
    prompt_only = http.post("/tokenize", json={"model": LOCAL, "prompt": question}).json()
    # The chat template adds turn markers around the question.
    assert body["count"] > prompt_only["count"]

    text = http.post("/detokenize", json={"model": LOCAL, "tokens": body["tokens"]}).json()
    assert question in text["prompt"]
    assert "Be brief." in text["prompt"]


def test_tokenize_messages_with_special_tokens_adds_bos(http: httpx.Client) -> None:
    messages = user("Hello there")
    plain = http.post("/tokenize", json={"model": LOCAL, "messages": messages}).json()
    special = http.post(
        "/tokenize", json={"model": LOCAL, "messages": messages, "add_special_tokens": True}
    ).json()
    bare = http.post(
        "/tokenize", json={"model": LOCAL, "messages": messages, "add_special_tokens": False}
    ).json()
    # By default the count is what the model sees, BOS included.
    assert special["count"] == plain["count"] == bare["count"] + 1
    assert special["tokens"] == plain["tokens"] and plain["tokens"][1:] == bare["tokens"]


def test_tokenize_messages_counts_the_prompt_the_model_sees(
    http: httpx.Client, client: openai.OpenAI
) -> None:
    messages = user("Write a long story about a cat.")
    counted = http.post("/tokenize", json={"model": LOCAL, "messages": messages}).json()
    reply = client.chat.completions.create(
        model=LOCAL,
        messages=messages,
        max_tokens=1,
        temperature=0,
    )
    assert reply.usage is not None
    assert counted["count"] == reply.usage.prompt_tokens


def test_detokenize_out_of_range_token_is_a_400(http: httpx.Client) -> None:
    response = http.post("/detokenize", json={"model": LOCAL, "tokens": [1, 10**9]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "tokens"
    assert str(10**9) in error["message"]


def test_tokenize_requires_exactly_one_input(http: httpx.Client) -> None:
    response = http.post("/tokenize", json={"model": LOCAL})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("path", ["/tokenize", "/detokenize"])
def test_tokenizer_endpoints_refuse_upstream_models(http: httpx.Client, path: str) -> None:
    body: dict[str, Any] = {"model": "fake-model"}
    body.update({"prompt": "Hello"} if path == "/tokenize" else {"tokens": [1, 2]})
    response = http.post(path, json=body)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "model"
    assert error["code"] == "model_not_supported"
    assert "fake-model" in error["message"]


def test_local_model_card(client: openai.OpenAI) -> None:
    card = client.models.retrieve(LOCAL)
    assert card.id == LOCAL
    assert card.owned_by == "llmrelay"
    assert card.model_extra is not None
    assert card.model_extra["max_model_len"] == N_CTX


# -- cancellation and concurrency ------------------------------------------------------------


def test_client_disconnect_stops_the_local_generation(
    gateway: Running, client: openai.OpenAI
) -> None:
    """An abandoned 400-token stream (tens of seconds on this model) must not hold the model."""
    body = {
        "model": LOCAL,
        "messages": user("Write a long story about a cat."),
        "max_tokens": 400,
        "temperature": 0,
        "stream": True,
    }
    deltas = 0
    with (
        httpx.Client(base_url=gateway.url, timeout=60) as session,
        session.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line.removeprefix("data: "))
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                deltas += 1
                if deltas == 2:
                    break
    assert deltas == 2

    def timed() -> float:
        started = time.monotonic()
        reply = client.chat.completions.create(
            model=LOCAL, messages=user("Hi"), max_tokens=4, temperature=0
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
        check_usage(reply.usage, 4)
        return time.monotonic() - started

    after_disconnect = timed()
    # The same request on an idle model, so that a slow or busy machine widens the margin.
    idle = timed()
    assert after_disconnect < 5 + 2 * idle, (
        f"the next request took {after_disconnect:.1f}s (vs {idle:.1f}s on an idle model): "
        "it waited behind the abandoned generation"
    )


def test_many_concurrent_upstream_requests(client: openai.OpenAI) -> None:
    def ask(i: int) -> tuple[str | None, str]:
        reply = client.chat.completions.create(
            model="fake-model", messages=user(f"Question {i}"), user=f"user-{i}"
        )
        return reply.choices[0].message.content, reply.model

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(ask, range(24)))
    assert results == [(ANSWER, "fake-model")] * 24


def test_concurrent_local_requests_queue_and_all_finish(client: openai.OpenAI) -> None:
    def ask(i: int) -> Any:
        return client.chat.completions.create(
            model=LOCAL, messages=user(f"Count to {i + 2}."), max_tokens=8
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(pool.map(ask, range(4)))
    assert len({reply.id for reply in replies}) == 4
    for reply in replies:
        assert reply.model == LOCAL
        assert reply.choices[0].finish_reason in ("stop", "length")
        check_usage(reply.usage, 8)


def test_server_stays_responsive_while_the_model_generates(client: openai.OpenAI) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        busy = pool.submit(
            client.chat.completions.create,
            model=LOCAL,
            messages=user("Tell me a long story."),
            max_tokens=64,
            temperature=0,
        )
        time.sleep(0.3)  # the generation is under way
        assert not busy.done()
        started = time.monotonic()
        reply = client.chat.completions.create(model="fake-model", messages=user("Hi"))
        elapsed = time.monotonic() - started
        assert reply.choices[0].message.content == ANSWER
        assert not busy.done()  # answered while the model was still generating
        assert elapsed < 0.5
        assert busy.result().choices[0].finish_reason in ("stop", "length")
