"""The fake Ollama upstream, driven by the official ``ollama`` SDK (and raw httpx for the wire)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest

from .fakes.ollama_upstream import FakeOllamaUpstream
from .fakes.scenario import (
    COMPLETION_TOKENS,
    MIDSTREAM_MESSAGE,
    MIDSTREAM_PIECES,
    PROMPT_TOKENS,
    TOOL_ARGUMENTS,
    View,
    pieces,
    summary,
)

IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image").decode()


def tool(name: str) -> dict[str, Any]:
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllamaUpstream]:
    with FakeOllamaUpstream() as fake:
        yield fake


@pytest.fixture
def client(fake: FakeOllamaUpstream) -> ollama.Client:
    return ollama.Client(host=fake.root)


def post(fake: FakeOllamaUpstream, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{fake.root}/api/chat", json=body, headers=headers)


def hi() -> list[dict[str, Any]]:
    return [{"role": "user", "content": "Hi"}]


def test_plain_reply(client: ollama.Client, fake: FakeOllamaUpstream) -> None:
    reply = client.chat(model="llama3.2", messages=hi())
    assert reply.message.role == "assistant"
    assert reply.message.content == summary(View(texts=["Hi"]))
    assert reply.message.tool_calls is None
    assert reply.done is True and reply.done_reason == "stop"
    assert reply.prompt_eval_count == PROMPT_TOKENS and reply.eval_count == COMPLETION_TOKENS
    assert reply.model == "llama3.2" and reply.total_duration and reply.total_duration > 10**6
    assert fake.last().path == "/api/chat" and fake.last().body["stream"] is False


def test_whole_reply_on_the_wire(fake: FakeOllamaUpstream) -> None:
    response = post(fake, {"model": "llama3.2", "messages": hi(), "stream": False})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {
        *("model", "created_at", "message", "done", "done_reason", "total_duration"),
        *("load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count"),
        "eval_duration",
    }
    assert body["created_at"].endswith("Z")


def test_streamed_reply(client: ollama.Client) -> None:
    chunks = list(client.chat(model="llama3.2", messages=hi(), stream=True))
    expected = summary(View(texts=["Hi"]))
    assert [c.message.content for c in chunks[:-1]] == pieces(expected)
    assert all(c.done is False and c.done_reason is None for c in chunks[:-1])
    assert all(c.eval_count is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.done is True and last.done_reason == "stop" and last.message.content == ""
    assert last.prompt_eval_count == PROMPT_TOKENS and last.eval_count == COMPLETION_TOKENS


def test_stream_is_ndjson_and_the_default(fake: FakeOllamaUpstream) -> None:
    response = post(fake, {"model": "llama3.2", "messages": hi()})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.text.endswith("}\n") and "data:" not in response.text
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    assert "done_reason" not in lines[0] and lines[-1]["done_reason"] == "stop"


def test_tool_call_whole(client: ollama.Client, fake: FakeOllamaUpstream) -> None:
    reply = client.chat(model="llama3.2", messages=hi(), tools=[tool("get_weather")])
    calls = reply.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == TOOL_ARGUMENTS
    assert reply.done_reason == "stop" and reply.message.content == ""
    raw = post(fake, {**fake.last().body, "stream": False}).json()
    assert raw["message"]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS}}
    ]


def test_tool_calls_streamed_whole_in_one_line(client: ollama.Client) -> None:
    tools = [tool("get_weather"), tool("get_time")]
    chunks = list(client.chat(model="llama3.2", messages=hi(), tools=tools, stream=True))
    with_calls = [c for c in chunks if c.message.tool_calls]
    assert len(with_calls) == 1 and with_calls[0].done is False
    calls = with_calls[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get_weather", TOOL_ARGUMENTS),
        ("get_time", TOOL_ARGUMENTS),
    ]
    assert chunks[-1].done is True and chunks[-1].done_reason == "stop"


def test_view_of_a_full_conversation(client: ollama.Client, fake: FakeOllamaUpstream) -> None:
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Weather?", "images": [IMAGE]},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS}}],
        },
        {"role": "tool", "content": "11 degrees", "tool_name": "get_weather"},
        {"role": "assistant", "content": "It is 11."},
        {"role": "user", "content": "Thanks"},
    ]
    reply = client.chat(model="llama3.2", messages=messages, tools=[tool("get_weather")])
    view = View(
        system=["Be terse."],
        texts=["Weather?", "It is 11.", "Thanks"],
        images=1,
        results=["11 degrees"],
    )
    assert reply.message.content == summary(view)
    assert fake.last().body["messages"][1]["images"] == [IMAGE]


def test_json_schema_output(client: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {}}}
    reply = client.chat(model="llama3.2", messages=hi(), format=schema)
    assert json.loads(reply.message.content or "") == {"keys": ["name", "age"]}
    # Plain JSON mode asks for no schema, so the answer is the usual summary.
    reply = client.chat(model="llama3.2", messages=hi(), format="json")
    assert reply.message.content == summary(View(texts=["Hi"]))


def test_small_num_predict_stops_for_length(client: ollama.Client) -> None:
    reply = client.chat(model="llama3.2", messages=hi(), options={"num_predict": 2})
    assert reply.done_reason == "length"
    stream = client.chat(model="llama3.2", messages=hi(), stream=True, options={"num_predict": 2})
    chunks = list(stream)
    assert chunks[-1].done_reason == "length"
    reply = client.chat(model="llama3.2", messages=hi(), options={"num_predict": 100})
    assert reply.done_reason == "stop"


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 502, 503])
@pytest.mark.parametrize("stream", [False, True])
def test_error_status(client: ollama.Client, status: int, stream: bool) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        reply = client.chat(model=f"error-{status}", messages=hi(), stream=stream)
        if stream:
            list(reply)
    assert caught.value.status_code == status
    assert isinstance(caught.value.error, str) and caught.value.error


def test_error_body_is_native(fake: FakeOllamaUpstream) -> None:
    response = post(fake, {"model": "error-429", "messages": hi()})
    assert response.status_code == 429
    assert response.json() == {"error": "too many requests"}
    assert "retry-after" not in response.headers


def test_midstream_error(client: ollama.Client, fake: FakeOllamaUpstream) -> None:
    seen: list[str] = []
    with pytest.raises(ollama.ResponseError) as caught:
        for chunk in client.chat(model="midstream-error", messages=hi(), stream=True):
            seen.append(chunk.message.content or "")
    assert seen == MIDSTREAM_PIECES
    assert caught.value.error == MIDSTREAM_MESSAGE and caught.value.status_code == -1
    raw = post(fake, {"model": "midstream-error", "messages": hi()})
    assert raw.status_code == 200
    assert json.loads(raw.text.splitlines()[-1]) == {"error": MIDSTREAM_MESSAGE}
    with pytest.raises(ollama.ResponseError) as whole:
        client.chat(model="midstream-error", messages=hi())
    assert whole.value.status_code == 500


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"model": None}, "model is required"),
        ({"messages": [{"role": "developer", "content": "x"}]}, "invalid role 'developer'"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}, "string"),
        ({"messages": [{"role": "user", "content": None}]}, "string"),
        ({"messages": [{"role": "user", "images": [f"data:image/png;base64,{IMAGE}"]}]}, "data:"),
        ({"messages": [{"role": "user", "images": ["not base64!"]}]}, "base64"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}}],
                    }
                ]
            },
            "arguments must be an object",
        ),
        ({"max_tokens": 5}, "max_tokens"),
        ({"temperature": 0.2}, "temperature"),
        ({"top_p": 0.9}, "top_p"),
        ({"stop": ["x"]}, "stop"),
        ({"seed": 1}, "seed"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"n": 1}, "'n'"),
        ({"options": {"max_tokens": 5}}, "max_tokens"),
        ({"options": {"num_predict": "5"}}, "num_predict"),
        ({"format": "yaml"}, "format"),
        ({"tools": [{"name": "get_weather"}]}, "tools"),
    ],
)
def test_invalid_requests_are_refused(
    fake: FakeOllamaUpstream, change: dict[str, Any], named: str
) -> None:
    body = {"model": "llama3.2", "messages": hi(), "stream": False, **change}
    response = post(fake, {k: v for k, v in body.items() if v is not None})
    assert response.status_code == 400
    assert named in response.json()["error"]


def test_documented_options_are_accepted(client: ollama.Client) -> None:
    options = {"temperature": 0.2, "top_p": 0.9, "top_k": 5, "min_p": 0.1, "seed": 7}
    options |= {"stop": ["\n"], "num_ctx": 2048, "repeat_penalty": 1.1, "num_predict": -1}
    reply = client.chat(model="llama3.2", messages=hi(), options=options, keep_alive="5m")
    assert reply.done_reason == "stop"


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "sk-key"])
def test_bad_authorization_is_refused(fake: FakeOllamaUpstream, header: str) -> None:
    response = post(fake, {"model": "llama3.2", "messages": hi()}, Authorization=header)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


def test_bearer_key_or_no_header_is_accepted(fake: FakeOllamaUpstream) -> None:
    keyed = ollama.Client(host=fake.root, headers={"Authorization": "Bearer ollama-key"})
    assert keyed.chat(model="llama3.2", messages=hi()).done is True
    assert fake.last().headers["Authorization"] == "Bearer ollama-key"
    assert post(fake, {"model": "llama3.2", "messages": hi()}).status_code == 200


def test_tags_and_version(client: ollama.Client, fake: FakeOllamaUpstream) -> None:
    models = client.list().models
    assert [m.model for m in models] == ["llama3.2:latest"]
    assert models[0].details is not None and models[0].details.family == "llama"
    assert httpx.get(f"{fake.root}/api/version").json() == {"version": "0.12.6"}
