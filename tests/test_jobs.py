"""Async jobs against a real gateway on loopback, a scripted fake upstream and real SQLite:
submit, poll, push over SSE, cancel, deduplicate, and the valid-JSON guarantee."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from .conftest import Running, run_gateway
from .fakes.scripted_upstream import ScriptedUpstream

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "minutes": {"type": "integer"}},
    "required": ["title", "minutes"],
    "additionalProperties": False,
}
RECIPE = {"type": "json_schema", "json_schema": {"name": "recipe", "schema": SCHEMA}}
HI = [{"role": "user", "content": "A recipe, please."}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def relay(upstream: ScriptedUpstream, tmp_path_factory: Any) -> Iterator[Running]:
    config = {
        "models": [upstream.model(name) for name in ("chef", "slow", "stubborn", "plain")],
        "jobs": {"workers": 2, "max_attempts": 3, "lease_seconds": 3},
    }
    with run_gateway(config, tmp_path_factory.mktemp("jobs")) as running:
        yield running


@pytest.fixture(scope="module")
def http(relay: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=relay.v1, timeout=30) as client:
        yield client


@pytest.fixture(autouse=True)
def _steady(upstream: ScriptedUpstream) -> None:
    upstream.pace = 0.0


def submit(http: httpx.Client, model: str, **more: Any) -> httpx.Response:
    return http.post("/jobs", json={"model": model, "messages": HI, **more})


def slow_job(http: httpx.Client, upstream: ScriptedUpstream, pace: float) -> str:
    """A job whose answer streams 20 words, ``pace`` seconds apart."""
    upstream.pace = pace
    upstream.script("slow", [" ".join(["word"] * 20)])
    return str(submit(http, "slow", max_tokens=20).json()["id"])


def wait(http: httpx.Client, job_id: str, seconds: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end in {seconds} s")


# -- submit and poll ----------------------------------------------------------------------------


def test_submit_then_poll_until_completed(http: httpx.Client, upstream: ScriptedUpstream) -> None:
    upstream.script("chef", ['{"title": "Soup", "minutes": 20}'])
    reply = submit(http, "chef", response_format=RECIPE, metadata={"user": "u1"})
    assert reply.status_code == 202
    job = reply.json()
    assert job["object"] == "job" and job["id"].startswith("job_")
    assert job["status"] in ("queued", "in_progress")
    assert reply.headers["location"] == f"/v1/jobs/{job['id']}"
    assert int(reply.headers["retry-after"]) >= 1
    done = wait(http, job["id"])
    assert done["status"] == "completed"
    assert done["progress"] == 100 and done["stage"] == "done"
    assert done["output"] == {"title": "Soup", "minutes": 20}
    assert done["result"]["object"] == "chat.completion"
    assert json.loads(done["result"]["choices"][0]["message"]["content"]) == done["output"]
    assert done["usage"]["completion_tokens"] == 4
    assert done["metadata"] == {"user": "u1"}
    assert done["attempts"] == 1 and done["poll_after_ms"] is None
    assert done["finished_at"] >= done["started_at"] >= done["created_at"]


def test_a_text_job_has_no_output(http: httpx.Client, upstream: ScriptedUpstream) -> None:
    upstream.script("plain", ["Just words."])
    done = wait(http, submit(http, "plain").json()["id"])
    assert done["status"] == "completed"
    assert done["output"] is None
    assert done["result"]["choices"][0]["message"]["content"] == "Just words."


def test_progress_rises_and_never_falls(http: httpx.Client, upstream: ScriptedUpstream) -> None:
    upstream.pace = 0.05
    upstream.script("slow", [" ".join(["word"] * 40)])
    job_id = submit(http, "slow", max_tokens=40).json()["id"]
    seen = []
    while True:
        job = http.get(f"/jobs/{job_id}").json()
        seen.append(job["progress"])
        if job["status"] == "completed":
            break
        assert job["progress"] <= 95
        time.sleep(0.05)
    assert seen == sorted(seen)
    assert len({p for p in seen if 0 < p < 100}) >= 3  # it moved with the tokens
    assert seen[-1] == 100


def test_list_newest_first_with_paging(http: httpx.Client) -> None:
    ids = [submit(http, "plain", metadata={"n": n}).json()["id"] for n in range(3)]
    for job_id in ids:
        wait(http, job_id)
    page = http.get("/jobs", params={"limit": 2}).json()
    assert page["object"] == "list"
    assert [j["id"] for j in page["data"]] == ids[::-1][:2]
    assert page["has_more"] is True
    rest = http.get("/jobs", params={"limit": 1, "after": page["last_id"]}).json()
    assert rest["data"][0]["id"] == ids[0]
    completed = http.get("/jobs", params={"status": "completed", "limit": 100}).json()
    assert all(j["status"] == "completed" for j in completed["data"])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "chef", "messages": HI, "stream": True}, "stream"),
        ({"model": "chef", "messages": []}, "messages"),
        ({"model": "chef", "messages": HI, "webhook_url": "http://x"}, "webhook_url"),
        (
            {"model": "chef", "messages": HI, "response_format": {"type": "json_schema",
             "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}},
            "response_format.json_schema.schema",
        ),
    ],
)  # fmt: skip
def test_bad_submissions_are_400s(http: httpx.Client, body: dict[str, Any], param: str) -> None:
    reply = http.post("/jobs", json=body)
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == param


def test_unknown_jobs_and_bad_queries(http: httpx.Client) -> None:
    missing = http.get("/jobs/job_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "job_not_found"
    assert http.post("/jobs/job_nope/cancel").status_code == 404
    assert http.get("/jobs/job_nope/events").status_code == 404
    assert http.get("/jobs", params={"status": "odd"}).json()["error"]["param"] == "status"
    assert http.get("/jobs", params={"limit": "0"}).json()["error"]["param"] == "limit"
    assert submit(http, "no-such-model").status_code == 404


# -- dedup ------------------------------------------------------------------------------------


def test_a_repeated_deterministic_request_gets_the_same_job(http: httpx.Client) -> None:
    first = submit(http, "plain", temperature=0, messages=[{"role": "user", "content": "dedup"}])
    again = submit(http, "plain", temperature=0, messages=[{"role": "user", "content": "dedup"}])
    assert first.status_code == 202
    assert again.status_code == 200 and again.headers["x-llmrelay-dedup"] == "hit"
    assert again.json()["id"] == first.json()["id"]
    other = submit(http, "plain", temperature=0.7, messages=[{"role": "user", "content": "dedup"}])
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]


def test_an_idempotency_key_gets_the_same_job(http: httpx.Client) -> None:
    body = {"model": "plain", "messages": HI, "temperature": 1}
    key = {"idempotency-key": f"key-{time.monotonic()}"}
    first = http.post("/jobs", json=body, headers=key)
    again = http.post("/jobs", json=body, headers=key)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    changed = http.post("/jobs", json={**body, "temperature": 0.5}, headers=key)
    assert changed.status_code == 400
    assert changed.json()["error"]["code"] == "idempotency_key_reused"


# -- the valid-JSON guarantee -----------------------------------------------------------------


def test_broken_json_is_repaired(http: httpx.Client, upstream: ScriptedUpstream) -> None:
    upstream.script("chef", ['```json\n{"title": "Stew", "minutes": 90\n```'])
    done = wait(http, submit(http, "chef", response_format=RECIPE).json()["id"])
    assert done["status"] == "completed"
    assert done["output"] == {"title": "Stew", "minutes": 90}
    assert done["attempts"] == 1
    assert done["history"] == [{"attempt": 1, "outcome": "repaired", "errors": []}]
    assert json.loads(done["result"]["choices"][0]["message"]["content"]) == done["output"]


def test_invalid_json_is_asked_again_with_the_errors(
    http: httpx.Client, upstream: ScriptedUpstream
) -> None:
    upstream.script(
        "chef", ['{"title": "Pie", "minutes": "an hour"}', '{"title": "Pie", "minutes": 60}']
    )
    done = wait(http, submit(http, "chef", response_format=RECIPE).json()["id"])
    assert done["status"] == "completed"
    assert done["output"] == {"title": "Pie", "minutes": 60}
    assert [h["outcome"] for h in done["history"]] == ["invalid", "valid"]
    assert "at $.minutes" in done["history"][0]["errors"][0]
    reask = upstream.asked("chef")[-1]["messages"]
    assert reask[-2] == {"role": "assistant", "content": '{"title": "Pie", "minutes": "an hour"}'}
    assert "$.minutes" in reask[-1]["content"]


def test_a_job_fails_after_the_attempts_run_out(
    http: httpx.Client, upstream: ScriptedUpstream
) -> None:
    upstream.script("stubborn", ["no JSON here at all"] * 3)
    done = wait(http, submit(http, "stubborn", response_format=RECIPE).json()["id"])
    assert done["status"] == "failed"
    assert done["output"] is None
    assert done["error"]["code"] == "invalid_structured_output"
    assert done["attempts"] == 3
    assert [h["outcome"] for h in done["history"]] == ["invalid"] * 3


# -- push and cancel --------------------------------------------------------------------------


def test_events_push_each_change_until_the_end(
    relay: Running, http: httpx.Client, upstream: ScriptedUpstream
) -> None:
    job_id = slow_job(http, upstream, pace=0.1)
    with httpx.Client(base_url=relay.v1, timeout=30) as client:
        raw = client.get(f"/jobs/{job_id}/events")
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in raw.text.split("\n") if line.startswith("data: ")]
    assert events[-1]["status"] == "completed" and events[-1]["progress"] == 100
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress) and len(events) >= 3
    assert {"waiting_for_model", "generating"} & {e["stage"] for e in events}


def test_cancel_closes_the_upstream_request(http: httpx.Client, upstream: ScriptedUpstream) -> None:
    upstream.pace = 0.2
    upstream.script("slow", [" ".join(["word"] * 100)])
    job_id = submit(http, "slow").json()["id"]
    deadline = time.monotonic() + 10
    while http.get(f"/jobs/{job_id}").json()["stage"] != "generating":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    hung_up = len(upstream.hung_up)
    cancelled = http.post(f"/jobs/{job_id}/cancel").json()
    assert cancelled["status"] == "cancelled"
    while len(upstream.hung_up) == hung_up:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    assert http.get(f"/jobs/{job_id}").json()["status"] == "cancelled"  # it stays cancelled
    assert http.post(f"/jobs/{job_id}/cancel").json()["status"] == "cancelled"


# -- the same guarantee on /v1/chat/completions -------------------------------------------------


@pytest.fixture(scope="module")
def client(relay: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=relay.v1, api_key="unused", max_retries=0)


STRICT = {
    "type": "json_schema",
    "json_schema": {"name": "recipe", "schema": SCHEMA, "strict": True},
}


@pytest.mark.parametrize(
    ("answers", "asked"),
    [
        (['{"title": "Tea", "minutes": 5'], 1),  # repaired
        (['{"title": "Tea", "minutes": "soon"}', '{"title": "Tea", "minutes": 5}'], 2),  # re-asked
    ],
)
def test_a_strict_schema_is_guaranteed_on_chat_completions(
    client: openai.OpenAI, upstream: ScriptedUpstream, answers: list[str], asked: int
) -> None:
    upstream.script("chef", answers)
    before = len(upstream.asked("chef"))
    reply = client.chat.completions.create(model="chef", messages=HI, response_format=STRICT)
    assert json.loads(reply.choices[0].message.content or "") == {"title": "Tea", "minutes": 5}
    assert len(upstream.asked("chef")) - before == asked


def test_a_strict_schema_never_answered_is_a_502(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    upstream.script("stubborn", ["nope"] * 3)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="stubborn", messages=HI, response_format=STRICT)
    assert caught.value.status_code == 502
    assert caught.value.code == "invalid_structured_output"


def test_json_cut_off_by_max_tokens_is_not_asked_again(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    upstream.script("stubborn", ['{"title": "Long'], finish="length")
    before = len(upstream.asked("stubborn"))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="stubborn", messages=HI, response_format=STRICT, max_tokens=3
        )
    assert "max_tokens" in caught.value.message
    assert len(upstream.asked("stubborn")) - before == 1


def test_a_schema_that_is_not_strict_passes_the_answer_through(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    upstream.script("stubborn", ["nope"])
    reply = client.chat.completions.create(model="stubborn", messages=HI, response_format=RECIPE)
    assert reply.choices[0].message.content == "nope"


# -- WebSocket push ---------------------------------------------------------------------------


def socket_url(running: Running, path: str) -> str:
    return running.v1.replace("http://", "ws://") + path


def test_a_websocket_pushes_each_change_then_closes(
    relay: Running, http: httpx.Client, upstream: ScriptedUpstream
) -> None:
    job_id = slow_job(http, upstream, pace=0.05)
    with connect(socket_url(relay, f"/jobs/{job_id}/ws")) as socket:
        updates = [json.loads(message) for message in socket]
        assert socket.close_code == 1000
    assert updates[-1]["status"] == "completed" and updates[-1]["progress"] == 100
    assert len(updates) >= 3
    assert [u["progress"] for u in updates] == sorted(u["progress"] for u in updates)


def test_a_websocket_for_an_unknown_job_closes_with_4404(relay: Running) -> None:
    with connect(socket_url(relay, "/jobs/job_nope/ws")) as socket:
        with pytest.raises(ConnectionClosedError):
            socket.recv()
        assert socket.close_code == 4404


def test_websockets_need_a_key_when_the_gateway_has_keys(
    upstream: ScriptedUpstream, tmp_path: Any
) -> None:
    model = upstream.model("plain")
    with run_gateway({"models": [model], "api_keys": ["relay-key"]}, tmp_path) as running:
        job = httpx.post(
            running.v1 + "/jobs",
            json={"model": "plain", "messages": HI},
            headers={"authorization": "Bearer relay-key"},
        ).json()
        url = socket_url(running, f"/jobs/{job['id']}/ws")
        with pytest.raises(InvalidStatus) as refused:
            connect(url)
        assert refused.value.response.status_code == 403
        for allowed in (
            connect(url + "?api_key=relay-key"),
            connect(url, additional_headers={"authorization": "Bearer relay-key"}),
        ):
            with allowed as socket:
                assert json.loads(list(socket)[-1])["status"] == "completed"


def test_jobs_cancelled_as_they_start_leave_the_workers_working(
    http: httpx.Client, upstream: ScriptedUpstream
) -> None:
    for _ in range(20):
        job_id = submit(http, "plain", temperature=1).json()["id"]
        http.post(f"/jobs/{job_id}/cancel")
    # Both workers still take jobs.
    ids = [submit(http, "plain", temperature=1).json()["id"] for _ in range(4)]
    assert [wait(http, job_id)["status"] for job_id in ids] == ["completed"] * 4


@pytest.mark.parametrize("job_id", ["%00", "job_nothex", "x" * 300])
def test_what_is_not_a_job_id_is_not_found(http: httpx.Client, job_id: str) -> None:
    for reply in (http.get(f"/jobs/{job_id}"), http.post(f"/jobs/{job_id}/cancel")):
        assert reply.status_code == 404
        assert reply.json()["error"]["code"] == "job_not_found"


def test_a_page_after_what_is_not_a_job_id_is_a_400(http: httpx.Client) -> None:
    reply = http.get("/jobs", params={"after": "\x00"})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "after"


@pytest.mark.parametrize("key", ["k" * 256, "tab\there"], ids=["long", "unprintable"])
def test_an_idempotency_key_must_be_short_and_printable(http: httpx.Client, key: str) -> None:
    reply = http.post(
        "/jobs", json={"model": "plain", "messages": HI}, headers={"idempotency-key": key}
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "Idempotency-Key"
