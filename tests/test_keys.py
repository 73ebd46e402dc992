"""Virtual keys end to end: the admin API and CLI that manage them, and what a key allows on
every client surface (models, system prompt, requests and tokens per minute, budget), in one
gateway and across ``llmrelay serve`` processes that share PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import yaml

from . import services
from .conftest import UPSTREAM_KEY, run_gateway, upstream_models
from .fakes.openai_upstream import ANSWER, FakeUpstream
from .services import free_port

MASTER = "sk-master-" + secrets.token_hex(16)
STATIC = "sk-static-" + secrets.token_hex(16)
# One request to the fake upstream uses 9 prompt and 7 completion tokens.
TOKENS_PER_REQUEST = 16
# The price of the "priced" model, in USD per million tokens: one request costs $0.016.
PRICE = 1000.0
SLOT_PROMPT = "Rules first. {system} Rules last."
HI = [{"role": "user", "content": "Hi"}]


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _openai(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)


def _marker() -> str:
    """Text to put in a request, to find it again among what the fake upstream was sent."""
    return f"marker-{secrets.token_hex(8)}"


def _ask(client: openai.OpenAI, text: str, model: str = "fake-model") -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def _sent(upstream: FakeUpstream, marker: str) -> list[dict[str, Any]]:
    """The bodies of the requests the fake upstream got that carry ``marker``."""
    return [r.body for r in upstream.requests if marker in json.dumps(r.body)]


def _messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in body["messages"]]


def _fresh_window(need: float = 10.0) -> None:
    """Rate limits count in fixed minute windows; wait for the next window when this one
    has less than ``need`` seconds left, so that a test's requests share one."""
    left = 60 - time.time() % 60
    if left < need:
        time.sleep(left + 0.1)


def _new_key(admin: httpx.Client, **fields: Any) -> dict[str, Any]:
    reply = admin.post("/admin/keys", json={"name": f"key-{secrets.token_hex(3)}", **fields})
    assert reply.status_code == 201, reply.text
    return reply.json()  # type: ignore[no-any-return]


def _patch(admin: httpx.Client, key: dict[str, Any], **fields: Any) -> dict[str, Any]:
    reply = admin.patch(f"/admin/keys/{key['id']}", json=fields)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def _error(reply: httpx.Response) -> dict[str, Any]:
    """The OpenAI-shaped error of a reply, checked to have exactly that shape."""
    body = reply.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


@dataclass
class Relay:
    url: str
    data_dir: Path


@pytest.fixture(scope="module")
def relay(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """A gateway with a master key, a static key, content logging and a priced model."""
    tmp = tmp_path_factory.mktemp("keys")
    data_dir = tmp / "data"
    priced = {
        "name": "priced",
        "provider": "openai",
        "model": "fake-model",
        "base_url": upstream.base_url,
        "api_key": UPSTREAM_KEY,
    }
    config = {
        "master_key": MASTER,
        "api_keys": [STATIC],
        "log_content": True,
        "data_dir": str(data_dir),
        "default_model": "fake-model",
        "models": [*upstream_models(upstream.base_url), priced],
        "pricing": {"priced": {"input": PRICE, "output": PRICE}},
    }
    with run_gateway(config, tmp) as running:
        yield Relay(running.url, data_dir)


@pytest.fixture(scope="module")
def admin(relay: Relay) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=relay.url, headers=_auth(MASTER), timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def http(relay: Relay) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=relay.url, timeout=30) as client:
        yield client


# -- the admin API ---------------------------------------------------------------------------


def test_create_shows_the_secret_once_and_get_and_list_never(
    admin: httpx.Client, relay: Relay
) -> None:
    fields = {
        "name": "team-a",
        "models": ["fake-model", "aliased"],
        "rpm": 100,
        "tpm": 10_000,
        "budget_usd": 12.5,
        "budget_period": "day",
        "system_prompt": "Be kind.",
        "metadata": {"team": "a", "cost_center": 7},
    }
    created = _new_key(admin, **fields)
    secret = created["key"]
    assert secret.startswith("sk-relay-") and len(secret) >= 40
    assert created["id"].startswith("key_") and created["object"] == "api_key"
    assert created["hint"] == f"{secret[:13]}...{secret[-4:]}"
    assert created["revoked_at"] is None
    assert {name: created[name] for name in fields} == fields

    got = admin.get(f"/admin/keys/{created['id']}")
    assert got.status_code == 200
    assert got.json() == {name: value for name, value in created.items() if name != "key"}
    assert secret not in got.text

    other = _new_key(admin)
    assert other["key"] != secret
    listed = admin.get("/admin/keys")
    assert listed.status_code == 200
    keys = listed.json()["data"]
    ids = [key["id"] for key in keys]
    assert ids.index(other["id"]) < ids.index(created["id"])  # newest first
    assert all("key" not in key for key in keys)
    assert secret not in listed.text and other["key"] not in listed.text
    # The secret is the key: it works at once.
    reply = _openai(relay.url, secret).chat.completions.create(model="fake-model", messages=HI)
    assert reply.choices[0].message.content == ANSWER


def test_a_key_works_as_soon_as_it_is_created_and_after_each_change(
    admin: httpx.Client, http: httpx.Client
) -> None:
    refused = []
    for n in range(30):
        created = admin.post("/admin/keys", json={"name": f"fresh-{n}"}).json()
        reply = http.get("/v1/models", headers=_auth(created["key"]))
        if reply.status_code != 200:
            refused.append(f"created #{n}: {reply.status_code}")
    for n in range(30):
        patched = admin.patch(f"/admin/keys/{created['id']}", json={"rpm": 1000 + n})
        assert patched.status_code == 200
        reply = http.get("/v1/models", headers=_auth(created["key"]))
        if reply.status_code != 200:
            refused.append(f"patched #{n}: {reply.status_code}")
    assert refused == []


def test_the_database_keeps_no_secret(admin: httpx.Client, relay: Relay) -> None:
    created = _new_key(admin, name="stored")
    secret = created["key"]
    # Used once, with content logging on, so that its request is recorded too.
    raw = _openai(relay.url, secret).chat.completions.with_raw_response.create(
        model="fake-model", messages=HI
    )
    request_id = raw.headers["x-request-id"]
    assert admin.get(f"/v1/requests/{request_id}").json()["key_id"] == created["id"]

    db = sqlite3.connect(relay.data_dir / "jobs.db")
    try:
        row = db.execute("SELECT * FROM api_keys WHERE id = ?", (created["id"],)).fetchone()
    finally:
        db.close()
    assert row is not None
    random_part = secret.removeprefix("sk-relay-")
    for column in row:
        text = column.decode() if isinstance(column, bytes) else str(column)
        assert random_part not in text
    # Nowhere in the database's files either: not in the request records, not in the WAL.
    for path in relay.data_dir.glob("jobs.db*"):
        assert random_part.encode() not in path.read_bytes(), path.name


def test_patch_changes_what_a_key_allows_at_once(admin: httpx.Client, relay: Relay) -> None:
    created = _new_key(admin, name="before", models=["fake-model"], rpm=5)
    client = _openai(relay.url, created["key"])
    with pytest.raises(openai.PermissionDeniedError):
        _ask(client, "Hi", model="aliased")

    changed = _patch(
        admin, created, name="after", models=["fake-model", "aliased"], metadata={"v": 2}
    )
    assert (changed["name"], changed["models"], changed["metadata"]) == (
        "after",
        ["fake-model", "aliased"],
        {"v": 2},
    )
    assert changed["rpm"] == 5 and changed["tpm"] is None  # what was not sent stays
    assert admin.get(f"/admin/keys/{created['id']}").json() == changed
    assert created["key"] not in json.dumps(changed)
    assert _ask(client, "Hi", model="aliased").choices[0].message.content == ANSWER

    for bad in ({"rpm": 0}, {"budget_usd": -1}, {"budget_period": "week"}, {"owner": "x"}):
        refused = admin.patch(f"/admin/keys/{created['id']}", json=bad)
        assert refused.status_code == 400, bad
        assert _error(refused)["type"] == "invalid_request_error"
    missing = admin.patch("/admin/keys/key_0000000000000000", json={"name": "x"})
    assert missing.status_code == 404
    assert _error(missing)["code"] == "key_not_found"


def test_create_refuses_bad_fields(admin: httpx.Client) -> None:
    for bad in (
        {},
        {"name": ""},
        {"name": "x", "rpm": 0},
        {"name": "x", "tpm": -5},
        {"name": "x", "budget_usd": -0.5},
        {"name": "x", "budget_period": "week"},
        {"name": "x", "key": "sk-relay-chosen-by-me"},
    ):
        reply = admin.post("/admin/keys", json=bad)
        assert reply.status_code == 400, (bad, reply.text)
        assert _error(reply)["type"] == "invalid_request_error"
    assert "sk-relay-chosen-by-me" not in admin.get("/admin/keys").text


def test_revoking_stops_a_key_at_once(admin: httpx.Client, relay: Relay) -> None:
    created = _new_key(admin, name="doomed")
    client = _openai(relay.url, created["key"])
    assert _ask(client, "Hi").choices[0].message.content == ANSWER

    revoked = admin.delete(f"/admin/keys/{created['id']}")
    assert revoked.status_code == 200
    revoked_at = revoked.json()["revoked_at"]
    assert revoked_at is not None and created["key"] not in revoked.text
    with pytest.raises(openai.AuthenticationError) as refused:
        _ask(client, "Hi")
    assert refused.value.status_code == 401 and refused.value.code == "invalid_api_key"

    assert admin.get(f"/admin/keys/{created['id']}").json()["revoked_at"] == revoked_at
    listed = {key["id"]: key for key in admin.get("/admin/keys").json()["data"]}
    assert listed[created["id"]]["revoked_at"] == revoked_at  # still listed, as revoked
    again = admin.delete(f"/admin/keys/{created['id']}")
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked_at
    assert admin.patch(f"/admin/keys/{created['id']}", json={"name": "back"}).status_code == 404
    unknown = admin.delete("/admin/keys/key_0000000000000000")
    assert unknown.status_code == 404 and _error(unknown)["code"] == "key_not_found"


# -- who may call what -----------------------------------------------------------------------

CLIENT_ENDPOINTS = [
    ("POST", "/v1/chat/completions", {"model": "fake-model", "messages": HI}),
    ("POST", "/v1/completions", {"model": "fake-model", "prompt": "Hi"}),
    ("POST", "/v1/embeddings", {"model": "fake-model", "input": "Hi"}),
    ("GET", "/v1/models", None),
    ("POST", "/chat", {"question": "Hi"}),
    ("POST", "/chat/stream", {"question": "Hi"}),
    ("POST", "/v1/jobs", {"model": "fake-model", "messages": HI}),
]


@pytest.mark.parametrize(("method", "path", "body"), CLIENT_ENDPOINTS)
def test_client_endpoints_refuse_a_missing_or_wrong_key(
    http: httpx.Client, method: str, path: str, body: dict[str, Any] | None
) -> None:
    for headers, says in (
        ({}, "You didn't provide an API key"),
        (_auth("sk-relay-" + secrets.token_urlsafe(32)), "Incorrect API key provided"),
        (_auth("not-a-key"), "Incorrect API key provided"),
    ):
        reply = http.request(method, path, json=body, headers=headers)
        assert reply.status_code == 401, reply.text
        error = _error(reply)
        assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key"
        assert says in error["message"]
    assert http.get("/health").status_code == 200  # public still


def test_keys_of_every_strength_work_on_client_endpoints(admin: httpx.Client, relay: Relay) -> None:
    virtual = _new_key(admin)["key"]
    for key in (MASTER, STATIC, virtual):
        client = _openai(relay.url, key)
        assert _ask(client, "Hi").choices[0].message.content == ANSWER
        assert "fake-model" in {model.id for model in client.models.list()}
        embedded = client.embeddings.create(model="fake-model", input="Hi")
        assert embedded.data[0].embedding == [0.1, 0.2, 0.3]


def test_the_openai_sdk_raises_authentication_error(relay: Relay) -> None:
    with pytest.raises(openai.AuthenticationError) as refused:
        _ask(_openai(relay.url, "sk-relay-" + secrets.token_urlsafe(32)), "Hi")
    assert refused.value.status_code == 401
    assert refused.value.code == "invalid_api_key"
    assert refused.value.type == "invalid_request_error"


def test_the_anthropic_surface_takes_keys_and_refuses_in_its_own_shape(
    admin: httpx.Client, http: httpx.Client, relay: Relay
) -> None:
    key = _new_key(admin, models=["fake-model"])["key"]
    # The SDK sends its key as x-api-key.
    client = anthropic.Anthropic(base_url=relay.url, api_key=key, max_retries=0, timeout=30)
    message = client.messages.create(model="fake-model", max_tokens=32, messages=HI)
    assert message.content[0].type == "text" and message.content[0].text == ANSWER
    # ... and a bearer token is taken too.
    body = {
        "model": "fake-model",
        "max_tokens": 32,
        "messages": HI,
    }
    assert http.post("/v1/messages", json=body, headers=_auth(key)).status_code == 200

    stranger = anthropic.Anthropic(
        base_url=relay.url, api_key="sk-relay-" + secrets.token_urlsafe(32), max_retries=0
    )
    with pytest.raises(anthropic.AuthenticationError) as refused:
        stranger.messages.create(model="fake-model", max_tokens=32, messages=HI)
    assert refused.value.status_code == 401
    assert refused.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Incorrect API key provided."},
    }
    bare = http.post("/v1/messages", json=body)
    assert bare.status_code == 401
    assert bare.json()["type"] == "error"
    assert bare.json()["error"]["type"] == "authentication_error"

    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        client.messages.create(model="aliased", max_tokens=32, messages=HI)
    assert denied.value.body["type"] == "error"  # type: ignore[index]
    assert denied.value.body["error"]["type"] == "permission_error"  # type: ignore[index]


def test_admin_endpoints_refuse_every_key_but_the_master_key(
    admin: httpx.Client, http: httpx.Client, relay: Relay
) -> None:
    created = _new_key(admin)
    routes = [
        ("GET", "/admin/keys", None),
        ("POST", "/admin/keys", {"name": "sneaky"}),
        ("GET", f"/admin/keys/{created['id']}", None),
        ("PATCH", f"/admin/keys/{created['id']}", {"rpm": 1_000_000}),
        ("DELETE", f"/admin/keys/{created['id']}", None),
    ]
    for method, path, body in routes:
        for key in (created["key"], STATIC):
            reply = http.request(method, path, json=body, headers=_auth(key))
            assert reply.status_code == 403, (method, path, reply.text)
            error = _error(reply)
            assert error["type"] == "permission_error"
            assert error["code"] == "master_key_required"
        for headers in ({}, _auth("sk-wrong-master"), _auth(MASTER + "x")):
            reply = http.request(method, path, json=body, headers=headers)
            assert reply.status_code == 401, (method, path, reply.text)
            assert _error(reply)["code"] == "invalid_api_key"
    # None of that changed anything: the key is as it was, and still works.
    assert admin.get(f"/admin/keys/{created['id']}").json() == {
        name: value for name, value in created.items() if name != "key"
    }
    assert "sneaky" not in admin.get("/admin/keys").text
    assert _ask(_openai(relay.url, created["key"]), "Hi").choices[0].message.content == ANSWER


def test_without_a_master_key_admin_is_off(upstream: FakeUpstream, tmp_path: Path) -> None:
    config = {"api_keys": [STATIC], "models": upstream_models(upstream.base_url)}
    with run_gateway(config, tmp_path) as running, httpx.Client(base_url=running.url) as http:
        for headers in ({}, _auth(STATIC), _auth(MASTER)):
            reply = http.post("/admin/keys", json={"name": "x"}, headers=headers)
            assert reply.status_code == 403
            assert _error(reply)["code"] == "admin_disabled"
        assert _ask(_openai(running.url, STATIC), "Hi").choices[0].message.content == ANSWER
        with pytest.raises(openai.AuthenticationError):
            _ask(_openai(running.url, "sk-other"), "Hi")

    # The master key may come from the environment instead.
    env = {"LLMRELAY_MASTER_KEY": MASTER}
    config = {"models": upstream_models(upstream.base_url)}
    with run_gateway(config, tmp_path, env) as running, httpx.Client(base_url=running.url) as http:
        created = http.post("/admin/keys", json={"name": "from-env"}, headers=_auth(MASTER))
        assert created.status_code == 201
        client = _openai(running.url, created.json()["key"])
        assert _ask(client, "Hi").choices[0].message.content == ANSWER
        # With a master key, client endpoints need a key.
        assert http.get("/v1/models").status_code == 401


# -- what a key allows -----------------------------------------------------------------------


def test_a_key_may_use_only_its_models(
    admin: httpx.Client, http: httpx.Client, relay: Relay, upstream: FakeUpstream
) -> None:
    key = _new_key(admin, models=["fake-model"])["key"]
    client = _openai(relay.url, key)
    assert _ask(client, "Hi").choices[0].message.content == ANSWER
    marker = _marker()
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _ask(client, marker, model="aliased")
    assert refused.value.status_code == 403
    assert refused.value.code == "model_not_allowed"
    assert refused.value.body["param"] == "model"  # type: ignore[index]
    assert _sent(upstream, marker) == []  # refused before any upstream was asked

    with pytest.raises(openai.PermissionDeniedError):
        client.embeddings.create(model="aliased", input=marker)
    with pytest.raises(openai.PermissionDeniedError):
        client.completions.create(model="aliased", prompt=marker)
    assert client.embeddings.create(model="fake-model", input="Hi").data
    assert client.completions.create(model="fake-model", prompt="Hi").choices[0].text == ANSWER
    # An unknown model is not found, whatever the key allows.
    with pytest.raises(openai.NotFoundError):
        _ask(client, "Hi", model="no-such-model")
    # The model list shows the key its own models only; the master key sees them all.
    assert [m.id for m in client.models.list()] == ["fake-model"]
    assert client.models.retrieve("fake-model").id == "fake-model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("aliased")
    everyone = [m.id for m in _openai(relay.url, MASTER).models.list()]
    assert "aliased" in everyone and "fake-model" in everyone

    refused_chat = http.post(
        "/chat", json={"question": marker, "model": "aliased"}, headers=_auth(key)
    )
    assert refused_chat.status_code == 403
    assert _error(refused_chat)["code"] == "model_not_allowed"
    allowed = http.post("/chat", json={"question": "Hi"}, headers=_auth(key))  # the default
    assert allowed.status_code == 200 and allowed.json()["answer"] == ANSWER
    assert _sent(upstream, marker) == []


def test_a_keys_system_prompt_goes_first(
    admin: httpx.Client, relay: Relay, upstream: FakeUpstream
) -> None:
    prompt = "You are the relay test bot."
    key = _new_key(admin, system_prompt=prompt)["key"]
    client = _openai(relay.url, key)
    marker = _marker()
    raw = client.chat.completions.with_raw_response.create(
        model="fake-model",
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": marker},
        ],
    )
    assert raw.parse().choices[0].message.content == ANSWER
    [sent] = _sent(upstream, marker)
    assert _messages(sent) == [
        ("system", prompt),
        ("system", "Answer in French."),
        ("user", marker),
    ]
    # The inspector shows what was put in, and what went upstream.
    record = httpx.get(
        f"{relay.url}/v1/requests/{raw.headers['x-request-id']}", headers=_auth(key)
    ).json()
    assert record["injected"] == [prompt]
    assert record["client_request"]["messages"][0]["content"] == "Answer in French."
    assert _messages(record["upstream"][0]["body"]) == _messages(sent)

    # Streams get it too.
    marker = _marker()
    stream = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": marker}], stream=True
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    [sent] = _sent(upstream, marker)
    assert _messages(sent) == [("system", prompt), ("user", marker)]

    # A key without one sends the messages as they came.
    marker = _marker()
    _ask(_openai(relay.url, _new_key(admin)["key"]), marker)
    [sent] = _sent(upstream, marker)
    assert _messages(sent) == [("user", marker)]


def test_the_system_slot_takes_the_clients_own_system_prompt(
    admin: httpx.Client, relay: Relay, upstream: FakeUpstream
) -> None:
    client = _openai(relay.url, _new_key(admin, system_prompt=SLOT_PROMPT)["key"])
    cases = [
        ([("system", "Be brief.")], "Rules first. Be brief. Rules last."),
        ([], "Rules first.  Rules last."),
        ([("system", "One."), ("developer", "Two.")], "Rules first. One.\nTwo. Rules last."),
    ]
    for own, expected in cases:
        marker = _marker()
        messages = [{"role": role, "content": text} for role, text in own]
        client.chat.completions.create(
            model="fake-model", messages=[*messages, {"role": "user", "content": marker}]
        )
        [sent] = _sent(upstream, marker)
        assert _messages(sent) == [("system", expected), ("user", marker)]


def test_system_prompts_reach_simple_chat_and_anthropic_requests(
    admin: httpx.Client, http: httpx.Client, relay: Relay, upstream: FakeUpstream
) -> None:
    key = _new_key(admin, system_prompt=SLOT_PROMPT)["key"]
    marker = _marker()
    reply = http.post("/chat", json={"question": marker, "system": "Own."}, headers=_auth(key))
    assert reply.status_code == 200 and reply.json()["answer"] == ANSWER
    [sent] = _sent(upstream, marker)
    assert _messages(sent) == [("system", "Rules first. Own. Rules last."), ("user", marker)]

    marker = _marker()
    with http.stream(
        "POST", "/chat/stream", json={"question": marker}, headers=_auth(key)
    ) as streamed:
        assert streamed.status_code == 200
        text = streamed.read().decode()
    assert "[DONE]" in text
    [sent] = _sent(upstream, marker)
    assert _messages(sent) == [("system", "Rules first.  Rules last."), ("user", marker)]

    marker = _marker()
    client = anthropic.Anthropic(base_url=relay.url, api_key=key, max_retries=0, timeout=30)
    client.messages.create(
        model="fake-model",
        max_tokens=32,
        system="Be terse.",
        messages=[{"role": "user", "content": marker}],
    )
    [sent] = _sent(upstream, marker)
    assert _messages(sent) == [("system", "Rules first. Be terse. Rules last."), ("user", marker)]


def test_legacy_completions_refuse_a_key_with_a_system_prompt(
    admin: httpx.Client, relay: Relay, upstream: FakeUpstream
) -> None:
    client = _openai(relay.url, _new_key(admin, system_prompt="Be kind.")["key"])
    marker = _marker()
    for stream in (False, True):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.completions.create(model="fake-model", prompt=marker, stream=stream)
        assert refused.value.status_code == 403
        assert refused.value.code == "system_prompt_required"
    assert _sent(upstream, marker) == []
    # Its chat requests are fine, and so are a plain key's completions.
    assert _ask(client, "Hi").choices[0].message.content == ANSWER
    plain = _openai(relay.url, _new_key(admin)["key"])
    assert plain.completions.create(model="fake-model", prompt="Hi").choices[0].text == ANSWER


# -- limits ----------------------------------------------------------------------------------


def test_requests_per_minute(admin: httpx.Client, relay: Relay, upstream: FakeUpstream) -> None:
    _fresh_window()
    created = _new_key(admin, rpm=3)
    client = _openai(relay.url, created["key"])
    for remaining in ("2", "1", "0"):
        raw = client.chat.completions.with_raw_response.create(model="fake-model", messages=HI)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-remaining-requests"] == remaining
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        assert "x-ratelimit-limit-tokens" not in raw.headers  # no tpm on this key

    marker = _marker()
    for _ in range(2):  # a refused request uses nothing, so the next is refused alike
        with pytest.raises(openai.RateLimitError) as refused:
            _ask(client, marker)
        error = refused.value
        assert error.status_code == 429
        assert error.type == "rate_limit_error" and error.code == "rate_limit_exceeded"
        headers = error.response.headers
        retry_after = int(headers["retry-after"])
        assert 1 <= retry_after <= 60
        assert headers["x-ratelimit-reset-requests"] == f"{retry_after}s"
        assert headers["x-ratelimit-limit-requests"] == "3"
        assert headers["x-ratelimit-remaining-requests"] == "0"
    assert _sent(upstream, marker) == []

    # Another key has a window of its own.
    assert _ask(_openai(relay.url, _new_key(admin, rpm=3)["key"]), "Hi").choices
    # Raising the limit takes effect at once; the window's count stays.
    _patch(admin, created, rpm=10)
    raw = client.chat.completions.with_raw_response.create(model="fake-model", messages=HI)
    assert raw.headers["x-ratelimit-limit-requests"] == "10"
    assert raw.headers["x-ratelimit-remaining-requests"] == "6"


def test_tokens_per_minute(admin: httpx.Client, relay: Relay) -> None:
    _fresh_window()
    client = _openai(relay.url, _new_key(admin, tpm=20)["key"])
    first = client.chat.completions.with_raw_response.create(model="fake-model", messages=HI)
    assert first.headers["x-ratelimit-limit-tokens"] == "20"
    assert first.headers["x-ratelimit-remaining-tokens"] == "20"
    assert "x-ratelimit-limit-requests" not in first.headers  # no rpm on this key
    # The first request's tokens are charged once it ended; the second is still let in.
    second = client.chat.completions.with_raw_response.create(model="fake-model", messages=HI)
    assert second.headers["x-ratelimit-remaining-tokens"] == str(20 - TOKENS_PER_REQUEST)
    with pytest.raises(openai.RateLimitError) as refused:
        _ask(client, "Hi")
    assert refused.value.code == "rate_limit_exceeded"
    headers = refused.value.response.headers
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert 1 <= int(headers["retry-after"]) <= 60
    assert "20 tokens" in refused.value.message


def test_a_spent_budget_is_insufficient_quota(
    admin: httpx.Client, relay: Relay, upstream: FakeUpstream
) -> None:
    created = _new_key(admin, budget_usd=0.01, budget_period="day")
    client = _openai(relay.url, created["key"])
    raw = client.chat.completions.with_raw_response.create(model="priced", messages=HI)
    cost = TOKENS_PER_REQUEST * PRICE / 1_000_000
    record = admin.get(f"/v1/requests/{raw.headers['x-request-id']}").json()
    assert record["cost_usd"] == pytest.approx(cost)
    marker = _marker()
    for model in ("priced", "fake-model"):  # the budget is the key's, whatever the model
        with pytest.raises(openai.RateLimitError) as refused:
            _ask(client, marker, model=model)
        assert refused.value.status_code == 429
        assert refused.value.type == "insufficient_quota"
        assert refused.value.code == "insufficient_quota"
    assert _sent(upstream, marker) == []
    # Raising the budget lets it in again.
    _patch(admin, created, budget_usd=1)
    assert _ask(client, "Hi", model="priced").choices[0].message.content == ANSWER

    # A budget of nothing allows nothing; a free model never spends one.
    with pytest.raises(openai.RateLimitError) as refused:
        _ask(_openai(relay.url, _new_key(admin, budget_usd=0)["key"]), "Hi")
    assert refused.value.code == "insufficient_quota"
    free = _openai(relay.url, _new_key(admin, budget_usd=0.000001)["key"])
    for _ in range(3):
        assert _ask(free, "Hi").choices[0].message.content == ANSWER


# -- jobs and the CLI ------------------------------------------------------------------------


def _finished_job(http: httpx.Client, job_id: str, key: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        job = http.get(f"/v1/jobs/{job_id}", headers=_auth(key)).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_jobs_run_as_their_keys_requests(
    admin: httpx.Client, http: httpx.Client, upstream: FakeUpstream
) -> None:
    _fresh_window()
    key = _new_key(admin, models=["fake-model"], system_prompt="Job rules.", rpm=3)["key"]
    marker = _marker()
    body = {"model": "fake-model", "messages": [{"role": "user", "content": marker}]}
    submitted = http.post("/v1/jobs", json=body, headers=_auth(key))
    assert submitted.status_code == 202, submitted.text
    assert submitted.headers["x-ratelimit-remaining-requests"] == "2"
    job = _finished_job(http, submitted.json()["id"], key)
    assert job["status"] == "completed", job
    assert job["result"]["choices"][0]["message"]["content"] == ANSWER
    [sent] = _sent(upstream, marker)
    assert _messages(sent) == [("system", "Job rules."), ("user", marker)]

    # Another key does not see it; the master key does.
    other = _new_key(admin)["key"]
    assert http.get(f"/v1/jobs/{job['id']}", headers=_auth(other)).status_code == 404
    assert http.get(f"/v1/jobs/{job['id']}", headers=_auth(MASTER)).status_code == 200
    # Submitting is metered like any request to a model; the refused one counts too.
    aliased = {**body, "model": "aliased"}
    refused = http.post("/v1/jobs", json=aliased, headers=_auth(key))
    assert refused.status_code == 403 and _error(refused)["code"] == "model_not_allowed"
    assert http.post("/v1/jobs", json=body, headers=_auth(key)).status_code == 202
    limited = http.post("/v1/jobs", json=body, headers=_auth(key))
    assert limited.status_code == 429 and _error(limited)["code"] == "rate_limit_exceeded"
    assert "retry-after" in limited.headers


def test_simple_chat_takes_keys_and_their_limits(admin: httpx.Client, http: httpx.Client) -> None:
    _fresh_window()
    key = _new_key(admin, rpm=2)["key"]
    answered = http.post("/chat", json={"question": "Hi"}, headers=_auth(key))
    assert answered.status_code == 200 and answered.json()["answer"] == ANSWER
    assert answered.headers["x-ratelimit-remaining-requests"] == "1"
    with http.stream("POST", "/chat/stream", json={"question": "Hi"}, headers=_auth(key)) as s:
        assert s.status_code == 200
        assert s.headers["x-ratelimit-remaining-requests"] == "0"
        events = [
            line.removeprefix("data: ") for line in s.iter_lines() if line.startswith("data:")
        ]
    assert events[-1] == "[DONE]"
    assert "".join(json.loads(event)["delta"] for event in events[:-1]) == ANSWER
    limited = http.post("/chat", json={"question": "Hi"}, headers=_auth(key))
    assert limited.status_code == 429
    assert _error(limited)["type"] == "rate_limit_error"
    assert int(limited.headers["retry-after"]) >= 1


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "llmrelay", "keys", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_creates_lists_and_revokes_keys(relay: Relay, admin: httpx.Client) -> None:
    name = f"cli-{secrets.token_hex(3)}"
    created = _cli(
        "create", name, "--models", "fake-model, aliased", "--rpm", "7", "--tpm", "900",
        "--budget-usd", "2.5", "--budget-period", "day", "--system-prompt", "Be kind.",
        "--url", relay.url, "--master-key", MASTER,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["key"].startswith("sk-relay-") and key["name"] == name
    assert (key["models"], key["rpm"], key["tpm"]) == (["fake-model", "aliased"], 7, 900)
    assert (key["budget_usd"], key["budget_period"], key["system_prompt"]) == (
        2.5,
        "day",
        "Be kind.",
    )
    stored = admin.get(f"/admin/keys/{key['id']}").json()
    assert stored == {name: value for name, value in key.items() if name != "key"}
    assert _ask(_openai(relay.url, key["key"]), "Hi").choices[0].message.content == ANSWER

    # From here on, the gateway and master key come from the environment.
    env = {"LLMRELAY_URL": relay.url, "LLMRELAY_MASTER_KEY": MASTER}
    listed = _cli("list", **env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[:6] == ["ID", "NAME", "KEY", "STATE", "MODELS", "LIMITS"]
    [row] = [line for line in listed.stdout.splitlines() if key["id"] in line]
    assert name in row and key["hint"] in row and " live " in row
    assert "fake-model,aliased" in row and "7 rpm, 900 tpm, $2.5/day" in row
    assert key["key"] not in listed.stdout

    revoked = _cli("revoke", key["id"], **env)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"revoked {key['id']} ({name})"
    with pytest.raises(openai.AuthenticationError):
        _ask(_openai(relay.url, key["key"]), "Hi")
    [row] = [line for line in _cli("list", **env).stdout.splitlines() if key["id"] in line]
    assert " revoked " in row

    # Refusals are reported, with a failing exit status.
    wrong = _cli("list", "--url", relay.url, "--master-key", "sk-wrong")
    assert wrong.returncode == 1 and "401" in wrong.stderr
    virtual = _cli("create", "x", "--url", relay.url, "--master-key", _new_key(admin)["key"])
    assert virtual.returncode == 1 and "403" in virtual.stderr
    missing = _cli("revoke", "key_0000000000000000", **env)
    assert missing.returncode == 1 and "404" in missing.stderr


# -- gateway processes sharing a database ----------------------------------------------------


@dataclass
class Cluster:
    urls: list[str]  # the two gateways' base URLs
    bus: str  # "listen-notify" or "redis"


def _cluster(
    tmp: Path, upstream: FakeUpstream, postgres_server: str, redis: str | None
) -> Iterator[Cluster]:
    """Two ``llmrelay serve`` processes on one PostgreSQL database, and Redis when given."""
    database = services.fresh_database(postgres_server, f"keys_{secrets.token_hex(6)}")
    config: dict[str, Any] = {
        "master_key": MASTER,
        "models": upstream_models(upstream.base_url),
        "jobs": {"store": database, "workers": 0},
        "retry": {"attempts": 1},
    }
    if redis is not None:
        config["redis"] = redis
    path = tmp / "llmrelay.yaml"
    path.write_text(yaml.safe_dump(config))
    processes: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for n in range(2):
            port = free_port()
            processes.append(services.llmrelay(path, tmp / f"gateway-{n}.log", port))
            urls.append(f"http://127.0.0.1:{port}")
        yield Cluster(urls, "redis" if redis else "listen-notify")
    finally:
        for process in processes:
            if process.poll() is None:
                services.stop(process)


@pytest.fixture(scope="module")
def pg_cluster(
    upstream: FakeUpstream,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("pg-cluster")
    yield from _cluster(tmp, upstream, postgres_server, None)


@pytest.fixture(scope="module")
def redis_cluster(
    upstream: FakeUpstream,
    postgres_server: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("redis-cluster")
    yield from _cluster(tmp, upstream, postgres_server, redis_url)


@pytest.fixture(params=["listen-notify", "redis"])
def cluster(request: pytest.FixtureRequest) -> Cluster:
    name = "pg_cluster" if request.param == "listen-notify" else "redis_cluster"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def _create_on(url: str, **fields: Any) -> dict[str, Any]:
    reply = httpx.post(
        url + "/admin/keys",
        json={"name": f"key-{secrets.token_hex(3)}", **fields},
        headers=_auth(MASTER),
    )
    assert reply.status_code == 201, reply.text
    return reply.json()  # type: ignore[no-any-return]


def _chat(url: str, key: str) -> httpx.Response:
    body = {"model": "fake-model", "messages": HI}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=_auth(key), timeout=30)


def _until(check: Any, seconds: float) -> float:
    """Wait until ``check()`` holds; how long it took. Fails after ``seconds``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, "not within the time allowed"
        time.sleep(0.01)
    return time.monotonic() - start


def test_a_key_revoked_through_one_process_stops_on_the_other_at_once(
    cluster: Cluster,
) -> None:
    first, second = cluster.urls
    created = _create_on(first)
    # A new key is told to the other process too, well before its 5 s look at the table.
    _until(lambda: _chat(second, created["key"]).status_code == 200, 2)

    revoked = httpx.delete(f"{first}/admin/keys/{created['id']}", headers=_auth(MASTER))
    assert revoked.status_code == 200
    took = _until(lambda: _chat(second, created["key"]).status_code == 401, 2)
    assert took < 1.0, f"{cluster.bus}: the other process took {took:.2f} s"
    refused = _chat(second, created["key"])
    assert _error(refused)["code"] == "invalid_api_key"
    assert _chat(first, created["key"]).status_code == 401
    shown = httpx.get(f"{second}/admin/keys/{created['id']}", headers=_auth(MASTER)).json()
    assert shown["revoked_at"] == revoked.json()["revoked_at"]


def test_a_key_changed_through_one_process_changes_on_the_other(cluster: Cluster) -> None:
    first, second = cluster.urls
    created = _create_on(first, models=["fake-model"])
    _until(lambda: _chat(second, created["key"]).status_code == 200, 2)
    patched = httpx.patch(
        f"{first}/admin/keys/{created['id']}", json={"models": ["aliased"]}, headers=_auth(MASTER)
    )
    assert patched.status_code == 200
    _until(lambda: _chat(second, created["key"]).status_code == 403, 2)
    assert _error(_chat(second, created["key"]))["code"] == "model_not_allowed"


def test_without_redis_each_process_counts_requests_on_its_own(pg_cluster: Cluster) -> None:
    _fresh_window()
    first, second = pg_cluster.urls
    created = _create_on(first, rpm=3)
    _until(lambda: httpx.get(f"{second}/v1/models", headers=_auth(created["key"])).is_success, 2)
    statuses = [_chat(url, created["key"]).status_code for url in (first, second) for _ in range(4)]
    # Each process lets three in: twice the key's limit in all.
    assert statuses == [200, 200, 200, 429] * 2


def test_redis_shares_requests_per_minute_across_processes(redis_cluster: Cluster) -> None:
    _fresh_window(15)
    first, second = redis_cluster.urls
    created = _create_on(first, rpm=3)
    _until(lambda: httpx.get(f"{second}/v1/models", headers=_auth(created["key"])).is_success, 2)
    statuses = [_chat(url, created["key"]).status_code for url in (first, second) for _ in range(3)]
    # Alone, the second process would have let three in as the first did.
    assert statuses == [200, 200, 200, 429, 429, 429]
    refused = _chat(second, created["key"])
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 60

    # Many at once, half through each process: exactly the limit gets in.
    many = _create_on(second, rpm=5)
    _until(lambda: httpx.get(f"{first}/v1/models", headers=_auth(many["key"])).is_success, 2)

    async def burst() -> list[int]:
        body = {"model": "fake-model", "messages": HI}
        async with httpx.AsyncClient(timeout=30, headers=_auth(many["key"])) as client:
            replies = await asyncio.gather(
                *(
                    client.post(f"{redis_cluster.urls[n % 2]}/v1/chat/completions", json=body)
                    for n in range(16)
                )
            )
        return [reply.status_code for reply in replies]

    counted = sorted(asyncio.run(burst()))
    assert counted == [200] * 5 + [429] * 11
