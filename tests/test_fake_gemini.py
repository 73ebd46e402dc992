"""The fake Gemini upstream, driven by Google's own SDK (google-genai), and by raw HTTP where
the SDK hides the wire: if the official client reads it right, the fake speaks Gemini."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from .fakes.gemini_upstream import FakeGeminiUpstream
from .fakes.scenario import (
    COMPLETION_TOKENS,
    MIDSTREAM_MESSAGE,
    MIDSTREAM_PIECES,
    PROMPT_TOKENS,
    TOOL_ARGUMENTS,
)

WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather in a city",
    parameters=types.Schema(
        type=types.Type.OBJECT,
        properties={"city": types.Schema(type=types.Type.STRING)},
        required=["city"],
    ),
)
TIME = types.FunctionDeclaration(name="get_time", description="The time now")
TOOLS = [types.Tool(function_declarations=[WEATHER, TIME])]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGeminiUpstream]:
    with FakeGeminiUpstream() as fake:
        yield fake


@pytest.fixture
def client(fake: FakeGeminiUpstream) -> genai.Client:
    # google-genai 3.x defaults to the v1 API; the fake serves v1beta, the documented surface.
    options = types.HttpOptions(base_url=fake.root, api_version="v1beta")
    return genai.Client(api_key="k", http_options=options)


def post(fake: FakeGeminiUpstream, body: Any, tail: str = "m:generateContent") -> httpx.Response:
    return httpx.post(
        f"{fake.root}/v1beta/models/{tail}", json=body, headers={"x-goog-api-key": "k"}
    )


HI = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


def test_plain_reply(client: genai.Client, fake: FakeGeminiUpstream) -> None:
    response = client.models.generate_content(model="fake-model", contents="Hi")
    assert response.text == "system=-; texts=Hi; images=0; results=-"
    candidate = response.candidates[0]  # type: ignore[index]
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content.role == "model"  # type: ignore[union-attr]
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        PROMPT_TOKENS + COMPLETION_TOKENS,
    )
    assert response.model_version == "fake-model"
    assert response.response_id
    sent = fake.last()
    assert sent.path == "/v1beta/models/fake-model:generateContent"
    assert sent.headers["x-goog-api-key"] == "k"
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]


def test_stream_reassembles(client: genai.Client, fake: FakeGeminiUpstream) -> None:
    chunks = list(client.models.generate_content_stream(model="fake-model", contents="Hi"))
    assert len(chunks) > 1
    assert "".join(c.text or "" for c in chunks) == "system=-; texts=Hi; images=0; results=-"
    *early, last = chunks
    for chunk in early:
        assert chunk.candidates[0].finish_reason is None  # type: ignore[index]
        assert chunk.usage_metadata.prompt_token_count == PROMPT_TOKENS  # type: ignore[union-attr]
        assert chunk.usage_metadata.candidates_token_count is None  # type: ignore[union-attr]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert last.usage_metadata.candidates_token_count == COMPLETION_TOKENS  # type: ignore[union-attr]
    assert last.usage_metadata.total_token_count == PROMPT_TOKENS + COMPLETION_TOKENS  # type: ignore[union-attr]
    assert fake.last().path == "/v1beta/models/fake-model:streamGenerateContent"


def test_stream_wire_is_crlf_data_only_without_sentinel(fake: FakeGeminiUpstream) -> None:
    response = post(fake, HI, "m:streamGenerateContent?alt=sse")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    raw = response.text
    assert raw.endswith("}\r\n\r\n")
    events = raw.split("\r\n\r\n")[:-1]
    assert all(e.startswith("data: {") and "\n" not in e for e in events)
    assert "[DONE]" not in raw
    assert "event:" not in raw
    chunks = [json.loads(e.removeprefix("data: ")) for e in events]
    assert all(
        set(c) == {"candidates", "usageMetadata", "modelVersion", "responseId"} for c in chunks
    )
    assert chunks[0]["usageMetadata"] == {
        "promptTokenCount": PROMPT_TOKENS,
        "totalTokenCount": PROMPT_TOKENS,
    }
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_stream_needs_alt_sse(fake: FakeGeminiUpstream) -> None:
    response = post(fake, HI, "m:streamGenerateContent")
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "alt=sse" in response.json()["error"]["message"]


def test_tool_calls_whole(client: genai.Client, fake: FakeGeminiUpstream) -> None:
    config = types.GenerateContentConfig(tools=TOOLS)
    response = client.models.generate_content(model="m", contents="Weather?", config=config)
    calls = response.function_calls
    assert calls is not None
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert all(c.args == TOOL_ARGUMENTS and c.id is None for c in calls)
    assert response.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert response.text is None
    declared = fake.last().body["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declared] == ["get_weather", "get_time"]


def test_tool_calls_streamed_whole_one_per_chunk(client: genai.Client) -> None:
    config = types.GenerateContentConfig(tools=TOOLS)
    chunks = list(client.models.generate_content_stream(model="m", contents="W?", config=config))
    assert [[c.name for c in chunk.function_calls or []] for chunk in chunks] == [
        ["get_weather"],
        ["get_time"],
    ]
    assert chunks[0].function_calls[0].args == TOOL_ARGUMENTS  # type: ignore[index]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]


def test_tool_choice(client: genai.Client) -> None:
    def ask(mode: str, names: list[str] | None = None) -> types.GenerateContentResponse:
        calling = types.FunctionCallingConfig(mode=mode, allowed_function_names=names)  # type: ignore[arg-type]
        config = types.GenerateContentConfig(
            tools=TOOLS, tool_config=types.ToolConfig(function_calling_config=calling)
        )
        return client.models.generate_content(model="m", contents="Hi", config=config)

    forced = ask("ANY", ["get_time"]).function_calls
    assert [c.name for c in forced or []] == ["get_time"]
    assert [c.name for c in ask("ANY").function_calls or []] == ["get_weather", "get_time"]
    assert ask("NONE").text == "system=-; texts=Hi; images=0; results=-"


def test_view_reflects_system_turns_image_and_tool_result(client: genai.Client) -> None:
    contents = [
        types.Content(
            role="user",
            parts=[
                types.Part.from_text(text="Describe"),
                types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png"),
            ],
        ),
        types.Content(role="model", parts=[types.Part.from_text(text="A cat.")]),
        types.Content(role="user", parts=[types.Part.from_text(text="Weather?")]),
        types.Content(
            role="model",
            parts=[types.Part.from_function_call(name="get_weather", args=TOOL_ARGUMENTS)],
        ),
        types.Content(
            role="user",
            parts=[
                types.Part.from_function_response(name="get_weather", response={"output": "18C"})
            ],
        ),
    ]
    config = types.GenerateContentConfig(system_instruction="Be terse.", tools=TOOLS)
    response = client.models.generate_content(model="m", contents=contents, config=config)
    assert response.text == (
        "system=Be terse.; texts=Describe/A cat./Weather?; images=1; results=18C"
    )


@pytest.mark.parametrize("field", ["response_schema", "response_json_schema"])
def test_json_schema(client: genai.Client, fake: FakeGeminiUpstream, field: str) -> None:
    schema = {
        "response_schema": types.Schema(
            type=types.Type.OBJECT,
            properties={
                "city": types.Schema(type=types.Type.STRING),
                "temp": types.Schema(type=types.Type.NUMBER),
            },
        ),
        "response_json_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
        },
    }[field]
    config = types.GenerateContentConfig(response_mime_type="application/json", **{field: schema})
    response = client.models.generate_content(model="m", contents="Hi", config=config)
    assert json.loads(response.text or "") == {"keys": ["city", "temp"]}
    sent = fake.last().body["generationConfig"]
    assert sent["responseMimeType"] == "application/json"
    camel = "responseSchema" if field == "response_schema" else "responseJsonSchema"
    assert set(sent[camel]["properties"]) == {"city", "temp"}


def test_snake_case_request_parses(fake: FakeGeminiUpstream) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "system_instruction": {"parts": [{"text": "Short."}]},
        "generation_config": {
            "response_mime_type": "application/json",
            "response_json_schema": {"type": "object", "properties": {"a": {}}},
        },
    }
    response = post(fake, body)
    assert response.status_code == 200
    assert response.json()["candidates"][0]["content"]["parts"] == [{"text": '{"keys": ["a"]}'}]


@pytest.mark.parametrize(
    ("status", "kind", "name"),
    [
        (400, errors.ClientError, "INVALID_ARGUMENT"),
        (401, errors.ClientError, "UNAUTHENTICATED"),
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_error_status(
    client: genai.Client, status: int, kind: type[errors.APIError], name: str, stream: bool
) -> None:
    with pytest.raises(kind) as caught:
        if stream:
            list(client.models.generate_content_stream(model=f"error-{status}", contents="Hi"))
        else:
            client.models.generate_content(model=f"error-{status}", contents="Hi")
    assert caught.value.code == status
    assert caught.value.status == name
    if status == 429:
        details = caught.value.details["error"]["details"]
        retry = [d for d in details if d["@type"] == "type.googleapis.com/google.rpc.RetryInfo"]
        assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]


def test_midstream_error_surfaces_after_text(client: genai.Client) -> None:
    seen: list[str] = []
    with pytest.raises(errors.ServerError) as caught:
        for chunk in client.models.generate_content_stream(model="midstream-error", contents="Hi"):
            seen.append(chunk.text or "")
    assert seen == MIDSTREAM_PIECES
    assert caught.value.code == 500
    assert caught.value.status == "INTERNAL"
    assert caught.value.message == MIDSTREAM_MESSAGE


def test_midstream_error_wire(fake: FakeGeminiUpstream) -> None:
    raw = post(fake, HI, "midstream-error:streamGenerateContent?alt=sse").text
    last = raw.split("\r\n\r\n")[-2]
    assert json.loads(last.removeprefix("data: ")) == {
        "error": {"code": 500, "message": MIDSTREAM_MESSAGE, "status": "INTERNAL"}
    }


def test_midstream_error_unstreamed_is_a_500(client: genai.Client) -> None:
    with pytest.raises(errors.ServerError) as caught:
        client.models.generate_content(model="midstream-error", contents="Hi")
    assert caught.value.message == MIDSTREAM_MESSAGE


def test_auth(fake: FakeGeminiUpstream) -> None:
    url = f"{fake.root}/v1beta/models/m:generateContent"
    missing = httpx.post(url, json=HI)
    assert missing.status_code == 401
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
    assert httpx.post(url, json=HI, headers={"x-goog-api-key": ""}).status_code == 401
    assert httpx.post(url, json=HI, params={"key": "k"}).status_code == 200


def test_unknown_method_is_not_found(fake: FakeGeminiUpstream) -> None:
    response = post(fake, HI, "m:embedText")
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "contents is not specified"),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "function", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "user", "parts": []}]}, "parts must not be empty"),
        ({"contents": [user({})]}, "exactly one of"),
        ({"contents": [user({"text": "x", "inlineData": {"data": ""}})]}, "exactly one of"),
        (
            {"contents": [user({"functionResponse": {"name": "f", "response": "18C"}})]},
            "function_response.response",
        ),
        (
            {"contents": [user({"functionCall": {"name": "f", "args": '{"a": 1}'}})]},
            "function_call.args",
        ),
        ({**HI, "messages": []}, 'Unknown name "messages"'),
        ({**HI, "generationConfig": {"temperature": 2.5}}, "temperature"),
        ({**HI, "generationConfig": {"temperature": -0.1}}, "temperature"),
        (
            {**HI, "generationConfig": {"responseSchema": {}, "responseJsonSchema": {}}},
            "cannot both be set",
        ),
        ({**HI, "toolConfig": {"functionCallingConfig": {"mode": "required"}}}, "mode"),
        (
            {
                **HI,
                "toolConfig": {
                    "functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["f"]}
                },
            },
            "allowed_function_names",
        ),
        ([HI], "JSON object"),
    ],
)
def test_invalid_requests_are_refused(fake: FakeGeminiUpstream, body: Any, needle: str) -> None:
    response = post(fake, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert needle in error["message"]


def test_valid_edge_cases_are_accepted(fake: FakeGeminiUpstream) -> None:
    body = {
        "contents": [
            {"parts": [{"text": "no role means user"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
            user({"functionResponse": {"name": "f", "response": {"temp": 18}}}),
        ],
        "safetySettings": [],
        "generationConfig": {"temperature": 2},
    }
    response = post(fake, body)
    assert response.status_code == 200, response.text
    text = response.json()["candidates"][0]["content"]["parts"][0]["text"]
    assert text == 'system=-; texts=no role means user; images=0; results={"temp": 18}'
