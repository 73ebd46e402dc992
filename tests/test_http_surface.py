"""Request validation, auth, body limits, request ids, health and docs, over plain HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from .conftest import Running, run_gateway
from .fakes.openai_upstream import FakeUpstream

GATEWAY_KEY = "relay-test-key-1"
USER = [{"role": "user", "content": "x"}]


@pytest.fixture(scope="module")
def secured(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    config = {
        "api_keys": [GATEWAY_KEY, "relay-test-key-2"],
        "max_body_bytes": 2000,
        "models": [{"name": "fake-model", "provider": "openai", "base_url": upstream.base_url}],
    }
    with run_gateway(config, tmp_path_factory.mktemp("secured")) as running:
        yield running


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"model": "fake-model", "messages": []}, "messages", "must not be empty"),
        ({"model": "fake-model"}, "messages", "required"),
        ({"messages": USER, "temperature": 2.5}, "temperature", "less than or equal to 2"),
        ({"messages": USER, "temperature": -0.1}, "temperature", "greater than or equal to 0"),
        ({"messages": USER, "max_tokens": 0}, "max_tokens", "greater than 0"),
        ({"messages": USER, "max_completion_tokens": -5}, "max_completion_tokens", "greater"),
        ({"messages": USER, "stream_options": {"include_usage": True}}, None, "stream"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role", "Input should"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0", "tool_call_id"),
        ({"messages": USER, "n": 0}, "n", "greater than or equal to 1"),
    ],
)
def test_invalid_requests_are_400(
    http: httpx.Client, body: dict[str, object], param: str | None, fragment: str
) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]
    if param is not None:
        assert error["param"] == param


def test_malformed_json_is_400(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions",
        content=b'{"messages": [',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "could not parse the JSON body" in response.json()["error"]["message"]


def test_sdk_raises_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="fake-model", messages=[])


def test_missing_model_uses_the_default(http: httpx.Client, upstream: FakeUpstream) -> None:
    response = http.post("/v1/chat/completions", json={"messages": USER})
    assert response.status_code == 200
    assert upstream.last().body["model"] == "fake-model"


def test_request_id_is_echoed_or_minted(http: httpx.Client) -> None:
    mine = http.get("/health", headers={"x-request-id": "my-trace-42"})
    assert mine.headers["x-request-id"] == "my-trace-42"
    minted = http.get("/health", headers={"x-request-id": "bad id with spaces"})
    assert minted.headers["x-request-id"].startswith("req_")
    failed = http.post("/v1/chat/completions", json={"messages": []})
    assert failed.headers["x-request-id"].startswith("req_")


def test_health_ready_docs(http: httpx.Client) -> None:
    assert http.get("/health").json() == {"status": "ok"}
    ready = http.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["models"]["local"] is True
    assert "swagger" in http.get("/docs").text.lower()
    spec = http.get("/openapi.json").json()
    assert "/v1/chat/completions" in spec["paths"]
    body = spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "messages" in spec["components"]["schemas"][ref]["properties"]


def test_auth_required_when_keys_configured(secured: Running) -> None:
    body = {"model": "fake-model", "messages": USER}
    missing = httpx.post(secured.v1 + "/chat/completions", json=body)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    wrong = httpx.post(
        secured.v1 + "/chat/completions", json=body, headers={"authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    for key in (GATEWAY_KEY, "relay-test-key-2"):
        ok = httpx.post(
            secured.v1 + "/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
        )
        assert ok.status_code == 200
    via_header = httpx.post(
        secured.v1 + "/chat/completions", json=body, headers={"x-api-key": GATEWAY_KEY}
    )
    assert via_header.status_code == 200
    # Probes stay open so orchestrators need no key.
    assert httpx.get(secured.url + "/health").status_code == 200
    sdk = openai.OpenAI(base_url=secured.v1, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="fake-model", messages=USER)  # type: ignore[arg-type]


def test_body_over_the_limit_is_413(secured: Running) -> None:
    headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
    big = {"model": "fake-model", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = httpx.post(secured.v1 + "/chat/completions", json=big, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no content-length: the limit applies as it streams in
        yield b'{"model": "fake-model", "messages": [{"role": "user", "content": "'
        yield b"y" * 5000
        yield b'"}]}'

    streamed = httpx.post(secured.v1 + "/chat/completions", content=chunks(), headers=headers)
    assert streamed.status_code == 413


def test_gateway_key_never_logged(
    secured: Running, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    httpx.post(
        secured.v1 + "/chat/completions",
        json={"messages": USER},
        headers={"authorization": f"Bearer {GATEWAY_KEY}"},
    )
    assert GATEWAY_KEY not in caplog.text


def test_unknown_path_and_wrong_method(http: httpx.Client) -> None:
    missing = http.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Unknown path: /v2/nothing"
    wrong = http.delete("/v1/models/local")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"
    post_only = http.get("/v1/chat/completions")
    assert post_only.status_code == 405
    assert post_only.headers["allow"] == "POST"
