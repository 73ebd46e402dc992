"""The simple question-and-answer API: POST /chat, POST /chat/stream and GET /chat/stream.

The default model is "fake-model", whose upstream answers ``ANSWER`` (streamed in pieces);
"local" is the embedded model, whose text is junk, so only its shape is checked.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from .fakes.openai_upstream import ANSWER, FakeUpstream

ORIGIN = "https://app.example.com"
GENERATED_ID = re.compile(r"^req_[0-9a-f]{24}$")


def events(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of an SSE reply, in order."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return [
        line.removeprefix("data: ")
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


def deltas(payloads: list[str]) -> list[str]:
    """The ``delta`` texts of a simple-chat stream, checking its framing on the way."""
    assert payloads, "empty stream"
    assert payloads[-1] == "[DONE]"
    assert payloads.count("[DONE]") == 1
    texts = []
    for payload in payloads[:-1]:
        event = json.loads(payload)
        assert list(event) == ["delta"], event
        assert isinstance(event["delta"], str) and event["delta"]
        texts.append(event["delta"])
    return texts


def check_error(response: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param
    return dict(error)


# -- whole answers ---------------------------------------------------------------------------


def test_chat_answers_with_the_default_model(http: httpx.Client, upstream: FakeUpstream) -> None:
    response = http.post("/chat", json={"question": "Who are you?"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"answer": ANSWER, "model": "fake-model"}

    sent = upstream.last()
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "fake-model"
    assert sent.body["messages"] == [{"role": "user", "content": "Who are you?"}]
    assert not sent.body.get("stream")


def test_chat_names_the_model_the_client_chose(http: httpx.Client, upstream: FakeUpstream) -> None:
    response = http.post("/chat", json={"question": "Hi", "model": "aliased"})
    assert response.json() == {"answer": ANSWER, "model": "aliased"}
    # The alias is resolved to the upstream's own model id.
    assert upstream.last().body["model"] == "fake-model"


def test_chat_forwards_the_system_prompt(http: httpx.Client, upstream: FakeUpstream) -> None:
    response = http.post("/chat", json={"question": "Hi", "system": "You are a pirate."})
    assert response.status_code == 200
    messages = upstream.last().body["messages"]
    assert messages[0] == {"role": "system", "content": "You are a pirate."}
    assert messages[1] == {"role": "user", "content": "Hi"}
    assert len(messages) == 2


def test_chat_with_the_local_model(http: httpx.Client) -> None:
    response = http.post(
        "/chat", json={"question": "Say hello.", "model": "local", "system": "Be brief."}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"answer", "model"}
    assert body["model"] == "local"
    assert isinstance(body["answer"], str)


@pytest.mark.parametrize(
    "body",
    [{}, {"question": ""}, {"question": "   \n\t "}, {"question": None}, {"system": "Hi"}],
    ids=["missing", "empty", "whitespace", "null", "only-system"],
)
@pytest.mark.parametrize("path", ["/chat", "/chat/stream"])
def test_a_question_is_required(http: httpx.Client, path: str, body: dict[str, Any]) -> None:
    error = check_error(http.post(path, json=body), 400, param="question")
    assert error["type"] == "invalid_request_error"
    assert "question" in error["message"]


@pytest.mark.parametrize("path", ["/chat", "/chat/stream"])
def test_a_body_that_is_not_json_is_a_400(http: httpx.Client, path: str) -> None:
    response = http.post(path, content=b"question=hi", headers={"content-type": "text/plain"})
    assert check_error(response, 400)["type"] == "invalid_request_error"


@pytest.mark.parametrize("path", ["/chat", "/chat/stream"])
def test_unknown_model_is_a_404(http: httpx.Client, path: str) -> None:
    response = http.post(path, json={"question": "Hi", "model": "no-such-model"})
    error = check_error(response, 404, param="model")
    assert error["code"] == "model_not_found"
    assert "no-such-model" in error["message"]


def test_upstream_errors_keep_their_status(http: httpx.Client) -> None:
    response = http.post("/chat", json={"question": "Hi", "model": "error-429"})
    error = check_error(response, 429)
    assert error["code"] == "rate_limit_exceeded"
    assert response.headers["retry-after"] == "7"


# -- streamed answers ------------------------------------------------------------------------


def test_stream_post_sends_deltas_then_done(http: httpx.Client, upstream: FakeUpstream) -> None:
    response = http.post("/chat/stream", json={"question": "Who are you?"})
    # The gateway writes whatever arrived together as one event, so only the join is fixed.
    assert "".join(deltas(events(response))) == ANSWER
    assert response.headers["cache-control"] == "no-cache"
    sent = upstream.last()
    assert sent.body["stream"] is True
    assert sent.body["messages"] == [{"role": "user", "content": "Who are you?"}]


def test_stream_post_forwards_the_system_prompt(http: httpx.Client, upstream: FakeUpstream) -> None:
    response = http.post("/chat/stream", json={"question": "Hi", "system": "Reply in French."})
    assert "".join(deltas(events(response))) == ANSWER
    messages = upstream.last().body["messages"]
    assert messages[0] == {"role": "system", "content": "Reply in French."}
    assert messages[-1] == {"role": "user", "content": "Hi"}


def test_stream_get_works_like_post(http: httpx.Client, upstream: FakeUpstream) -> None:
    response = http.get("/chat/stream", params={"question": "Who are you?", "system": "Be nice."})
    # The gateway writes whatever arrived together as one event, so only the join is fixed.
    assert "".join(deltas(events(response))) == ANSWER
    sent = upstream.last()
    assert sent.body["stream"] is True
    assert sent.body["messages"][0] == {"role": "system", "content": "Be nice."}
    assert sent.body["messages"][1] == {"role": "user", "content": "Who are you?"}


def test_stream_get_and_post_give_the_same_answer(http: httpx.Client) -> None:
    posted = deltas(events(http.post("/chat/stream", json={"question": "Hello"})))
    got = deltas(events(http.get("/chat/stream", params={"question": "Hello"})))
    assert "".join(posted) == "".join(got) == ANSWER


@pytest.mark.parametrize(
    "params", [{}, {"question": ""}, {"question": "   "}], ids=["missing", "empty", "whitespace"]
)
def test_stream_get_requires_a_question(http: httpx.Client, params: dict[str, str]) -> None:
    error = check_error(http.get("/chat/stream", params=params), 400, param="question")
    assert error["type"] == "invalid_request_error"


def test_stream_get_with_unknown_model_is_a_404(http: httpx.Client) -> None:
    response = http.get("/chat/stream", params={"question": "Hi", "model": "no-such-model"})
    assert check_error(response, 404, param="model")["code"] == "model_not_found"


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_stream_with_the_local_model(http: httpx.Client, method: str) -> None:
    if method == "POST":
        response = http.post(
            "/chat/stream", json={"question": "Tell me a story.", "model": "local"}
        )
    else:
        response = http.get(
            "/chat/stream", params={"question": "Tell me a story.", "model": "local"}
        )
    texts = deltas(events(response))
    assert texts
    assert "".join(texts)


def test_stream_failing_midway_ends_with_an_error_event(http: httpx.Client) -> None:
    payloads = events(
        http.post("/chat/stream", json={"question": "Hi", "model": "midstream-error"})
    )
    assert payloads[-1] == "[DONE]"
    *before, error_payload, _ = payloads
    # What arrived before the failure is delivered first.
    assert "".join(json.loads(p)["delta"] for p in before) == "Hello from"
    error = json.loads(error_payload)["error"]
    assert "crashed" in error["message"]


def test_stream_upstream_error_before_the_first_chunk_is_a_plain_error(
    http: httpx.Client,
) -> None:
    response = http.post("/chat/stream", json={"question": "Hi", "model": "error-500"})
    assert check_error(response, 500)["type"] == "server_error"


# -- CORS and request ids --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/chat", "/chat/stream"])
def test_cors_preflight(http: httpx.Client, path: str) -> None:
    response = http.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"].lower()
    assert GENERATED_ID.match(response.headers["x-request-id"])


def test_cors_on_a_normal_request(http: httpx.Client) -> None:
    response = http.post("/chat", json={"question": "Hi"}, headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    # Browsers may read the request id.
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


def test_cors_on_a_streamed_request(http: httpx.Client) -> None:
    response = http.get("/chat/stream", params={"question": "Hi"}, headers={"Origin": ORIGIN})
    assert deltas(events(response))
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)


def test_every_response_has_a_request_id(http: httpx.Client) -> None:
    responses = [
        http.post("/chat", json={"question": "Hi"}),
        http.post("/chat", json={}),
        http.post("/chat", json={"question": "Hi", "model": "no-such-model"}),
        http.post("/chat/stream", json={"question": "Hi"}),
        http.get("/chat/stream", params={"question": "Hi"}),
        http.get("/chat/stream"),
    ]
    assert [r.status_code for r in responses] == [200, 400, 404, 200, 200, 400]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(GENERATED_ID.match(request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/chat", {"json": {"question": "Hi"}}),
        ("POST", "/chat", {"json": {}}),
        ("POST", "/chat/stream", {"json": {"question": "Hi"}}),
        ("GET", "/chat/stream", {"params": {"question": "Hi"}}),
    ],
    ids=["chat", "chat-error", "stream-post", "stream-get"],
)
def test_a_client_request_id_is_echoed(
    http: httpx.Client, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    request_id = "client-trace.42:abc"
    response = http.request(method, path, headers={"x-request-id": request_id}, **kwargs)
    assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize("given", ["has spaces", "x" * 129, "semi;colon"])
def test_an_unusable_client_request_id_is_replaced(http: httpx.Client, given: str) -> None:
    response = http.post("/chat", json={"question": "Hi"}, headers={"x-request-id": given})
    assert response.status_code == 200
    assert GENERATED_ID.match(response.headers["x-request-id"])
