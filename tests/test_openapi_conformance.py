"""Everything llmrelay emits validates against OpenAI's own OpenAPI spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC = Path(__file__).resolve().parents[2] / "shared" / "reference" / "openai-openapi.yaml"
USER = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def validate() -> Any:
    if not SPEC.exists():
        pytest.fail(f"the OpenAI spec is missing at {SPEC}")
    spec = _nullable_to_json_schema(
        yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    )
    registry = Registry().with_resource("urn:openai", Resource(spec, specification=DRAFT202012))

    def check(instance: Any, schema_name: str) -> None:
        ref = {"$ref": f"urn:openai#/components/schemas/{schema_name}"}
        jsonschema.Draft202012Validator(ref, registry=registry).validate(instance)

    return check


def _nullable_to_json_schema(node: Any) -> Any:
    """Rewrite OpenAPI 3.0's ``nullable: true``, which the spec still uses, as JSON Schema."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_to_json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        elif "type" not in node:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


def _events(response: httpx.Response) -> list[Any]:
    payloads = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


@pytest.mark.parametrize("model", ["fake-model", "local"])
def test_chat_completion_and_chunks(http: httpx.Client, validate: Any, model: str) -> None:
    body = {"model": model, "messages": USER, "max_tokens": 8}
    validate(http.post("/v1/chat/completions", json=body).json(), "CreateChatCompletionResponse")
    stream = http.post(
        "/v1/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
    )
    chunks = _events(stream)
    assert chunks[-1]["usage"]
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")


def test_local_tool_call_and_json_output(http: httpx.Client, validate: Any) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
            },
        },
    }
    body = {
        "model": "local",
        "messages": USER,
        "max_tokens": 24,
        "tools": [tool],
        "tool_choice": "required",
    }
    validate(http.post("/v1/chat/completions", json=body).json(), "CreateChatCompletionResponse")
    for chunk in _events(http.post("/v1/chat/completions", json={**body, "stream": True})):
        validate(chunk, "CreateChatCompletionStreamResponse")


@pytest.mark.parametrize("model", ["fake-model", "local"])
def test_legacy_completion(http: httpx.Client, validate: Any, model: str) -> None:
    body = {"model": model, "prompt": "Once upon a time", "max_tokens": 6}
    validate(http.post("/v1/completions", json=body).json(), "CreateCompletionResponse")
    for chunk in _events(http.post("/v1/completions", json={**body, "stream": True})):
        # The spec has no chunk schema for legacy completions; its chunks are the whole shape,
        # except that finish_reason is null until the end, as OpenAI's own streams send it.
        for choice in chunk["choices"]:
            assert choice["finish_reason"] in (None, "stop", "length")
            choice["finish_reason"] = choice["finish_reason"] or "stop"
        validate(chunk, "CreateCompletionResponse")


def test_models_and_embeddings(http: httpx.Client, validate: Any) -> None:
    validate(http.get("/v1/models").json(), "ListModelsResponse")
    validate(http.get("/v1/models/local").json(), "Model")
    embedded = http.post("/v1/embeddings", json={"model": "fake-model", "input": "hi"}).json()
    validate(embedded, "CreateEmbeddingResponse")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": []}),
        ("/v1/chat/completions", {"model": "nope", "messages": USER}),
        ("/v1/chat/completions", {"model": "error-429", "messages": USER}),
        ("/v1/chat/completions", {"model": "garbage", "messages": USER}),
        ("/v1/chat/completions", {"model": "local", "messages": USER, "logprobs": True}),
        ("/v1/embeddings", {"model": "local", "input": "x"}),
    ],
)
def test_errors(http: httpx.Client, validate: Any, path: str, body: dict[str, Any]) -> None:
    response = http.post(path, json=body)
    assert response.status_code >= 400
    validate(response.json(), "ErrorResponse")


def test_mid_stream_error_event(http: httpx.Client, validate: Any) -> None:
    body = {"model": "midstream-error", "messages": USER, "stream": True}
    events = _events(http.post("/v1/chat/completions", json=body))
    validate(events[-1], "ErrorResponse")
