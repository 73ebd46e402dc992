"""Webhooks: the ended job, POSTed signed to the job's webhook_url, tried again while the
receiver fails, with every try recorded on the job."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from llmrelay.client import verify_webhook

from .conftest import run_gateway
from .fakes.scripted_upstream import ScriptedUpstream
from .fakes.webhook_receiver import WebhookReceiver

SECRET = "whsec-test-0123456789"
HI = [{"role": "user", "content": "Hello."}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture(scope="module")
def http(upstream: ScriptedUpstream, tmp_path_factory: Any) -> Iterator[httpx.Client]:
    config = {
        "models": [upstream.model("plain"), upstream.model("slow")],
        # The receiver is on loopback, which webhooks may reach only when allowed.
        "jobs": {"webhook_secret": SECRET, "webhook_attempts": 3, "webhook_allow_private": True},
    }
    with (
        run_gateway(config, tmp_path_factory.mktemp("webhooks")) as running,
        httpx.Client(base_url=running.v1, timeout=30) as client,
    ):
        yield client


def submit(http: httpx.Client, hook: str, model: str = "plain") -> dict[str, Any]:
    reply = http.post("/jobs", json={"model": model, "messages": HI, "webhook_url": hook})
    assert reply.status_code == 202, reply.text
    job: dict[str, Any] = reply.json()
    return job


def settled(http: httpx.Client, job_id: str, seconds: float = 20) -> dict[str, Any]:
    """The job once its webhook was delivered or given up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
        if job["webhook"]["state"] != "waiting":
            return job
        time.sleep(0.05)
    raise AssertionError(f"the webhook of job {job_id} was not settled in {seconds} s")


def test_the_ended_job_is_posted_signed(http: httpx.Client, receiver: WebhookReceiver) -> None:
    job = submit(http, receiver.url("signed"))
    assert job["webhook"] == {
        "url": receiver.url("signed"),
        "attempts": 0,
        "last_error": None,
        "state": "waiting",
    }
    ended = settled(http, job["id"])
    assert ended["webhook"]["state"] == "delivered"
    assert ended["webhook"]["attempts"] == 1
    [delivery] = receiver.to("signed")
    signature = delivery.headers["llmrelay-signature"]
    assert verify_webhook(SECRET, delivery.body, signature)
    assert not verify_webhook("another secret", delivery.body, signature)
    assert not verify_webhook(SECRET, delivery.body + b" ", signature)
    sent = orjson.loads(delivery.body)
    assert sent["id"] == job["id"] and delivery.headers["llmrelay-job-id"] == job["id"]
    assert sent["status"] == "completed"
    assert sent["result"]["choices"][0]["message"]["content"] == '{"ok": true}'


def test_a_failing_receiver_is_tried_again_later(
    http: httpx.Client, receiver: WebhookReceiver
) -> None:
    receiver.answer("flaky", [503, 429])
    job = submit(http, receiver.url("flaky"))
    ended = settled(http, job["id"])
    assert ended["webhook"]["state"] == "delivered"
    assert ended["webhook"]["attempts"] == 3
    tries = receiver.to("flaky")
    assert len(tries) == 3
    # One second, then two, between the tries.
    assert 0.9 <= tries[1].at - tries[0].at < 1.8
    assert 1.9 <= tries[2].at - tries[1].at < 2.8
    # Each try is signed afresh, and all carry the same ended job.
    assert all(verify_webhook(SECRET, t.body, t.headers["llmrelay-signature"]) for t in tries)
    assert len({orjson.loads(t.body)["finished_at"] for t in tries}) == 1


def test_a_receiver_that_refuses_is_not_asked_again(
    http: httpx.Client, receiver: WebhookReceiver
) -> None:
    receiver.answer("refusing", [410])
    job = settled(http, submit(http, receiver.url("refusing"))["id"])
    assert job["webhook"]["state"] == "failed"
    assert job["webhook"]["last_error"] == "the receiver answered 410"
    time.sleep(1.2)
    assert len(receiver.to("refusing")) == 1


def test_tries_stop_at_webhook_attempts(http: httpx.Client, receiver: WebhookReceiver) -> None:
    receiver.answer("down", [500, 500, 500, 500])
    job = settled(http, submit(http, receiver.url("down"))["id"])
    assert job["webhook"]["state"] == "failed"
    assert job["webhook"]["attempts"] == 3
    assert len(receiver.to("down")) == 3


def test_a_cancelled_job_is_posted_too(
    http: httpx.Client, upstream: ScriptedUpstream, receiver: WebhookReceiver
) -> None:
    upstream.pace = 0.2
    upstream.script("slow", [" ".join(["word"] * 50)])
    try:
        job = submit(http, receiver.url("cancelled"), model="slow")
        http.post(f"/jobs/{job['id']}/cancel")
        assert settled(http, job["id"])["webhook"]["state"] == "delivered"
    finally:
        upstream.pace = 0.0
    [delivery] = receiver.to("cancelled")
    assert orjson.loads(delivery.body)["status"] == "cancelled"


@pytest.mark.parametrize(
    "hook", ["not a url", "ftp://127.0.0.1/hook", "file:///etc/passwd"], ids=str
)
def test_a_webhook_url_must_be_http(http: httpx.Client, hook: str) -> None:
    reply = http.post("/jobs", json={"model": "plain", "messages": HI, "webhook_url": hook})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "webhook_url"


def test_webhooks_are_refused_without_a_secret(
    upstream: ScriptedUpstream, receiver: WebhookReceiver, tmp_path: Any
) -> None:
    config = {"models": [upstream.model("plain")]}
    with run_gateway(config, tmp_path) as running:
        reply = httpx.post(
            running.v1 + "/jobs",
            json={"model": "plain", "messages": HI, "webhook_url": receiver.url("never")},
        )
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "webhooks_not_configured"
    assert receiver.to("never") == []


def test_the_secret_can_come_from_the_environment(
    upstream: ScriptedUpstream, receiver: WebhookReceiver, tmp_path: Any
) -> None:
    env = {"LLMRELAY_WEBHOOK_SECRET": "from-the-env"}
    config = {"models": [upstream.model("plain")], "jobs": {"webhook_allow_private": True}}
    with run_gateway(config, tmp_path, env) as running:
        reply = httpx.post(
            running.v1 + "/jobs",
            json={"model": "plain", "messages": HI, "webhook_url": receiver.url("env")},
        )
        assert reply.status_code == 202
        deadline = time.monotonic() + 10
        while not receiver.to("env"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    [delivery] = receiver.to("env")
    assert verify_webhook("from-the-env", delivery.body, delivery.headers["llmrelay-signature"])


def test_a_repeat_is_the_same_job_only_with_the_same_webhook(
    http: httpx.Client, receiver: WebhookReceiver
) -> None:
    def deterministic(hook: str) -> httpx.Response:
        return http.post(
            "/jobs",
            json={"model": "plain", "messages": HI, "temperature": 0, "webhook_url": hook},
        )

    first = deterministic(receiver.url("first")).json()
    again = deterministic(receiver.url("first"))
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    other = deterministic(receiver.url("second"))
    assert other.status_code == 202 and other.json()["id"] != first["id"]
    assert other.json()["webhook"]["url"] == receiver.url("second")


def test_malformed_signatures_do_not_verify() -> None:
    body = b'{"id": "job_1"}'
    for signature in ["", "t=,v1=", "v1=abc", f"t={'9' * 400},v1=abc", "t=1,v1=ü", "t=٣,v1=a"]:
        assert not verify_webhook(SECRET, body, signature)


def test_webhooks_reach_no_private_address_unless_allowed(
    upstream: ScriptedUpstream, receiver: WebhookReceiver, tmp_path: Any
) -> None:
    config = {"models": [upstream.model("plain")], "jobs": {"webhook_secret": SECRET}}
    with run_gateway(config, tmp_path) as running, httpx.Client(base_url=running.v1) as http:
        for address in ("127.0.0.1", "169.254.169.254", "[::1]", "10.0.0.1"):
            reply = http.post(
                "/jobs",
                json={"model": "plain", "messages": HI, "webhook_url": f"http://{address}/h"},
            )
            assert reply.status_code == 400, address
            assert reply.json()["error"]["param"] == "webhook_url"
        # A name is checked as it resolves, when the webhook is sent.
        named = receiver.url("named").replace("127.0.0.1", "localhost")
        job = settled(http, submit(http, named)["id"])
    assert job["webhook"]["state"] == "failed"
    assert "non-public" in job["webhook"]["last_error"]
    assert receiver.to("named") == []
