"""Retries, timeouts, cooldowns, fallbacks, balancing and cancellation, against the
fault-injecting upstream, with short configured delays so that waits can be measured."""

from __future__ import annotations

import collections
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import Running, run_gateway
from .fakes.faulty_upstream import FaultyUpstream

RETRY = {"attempts": 3, "initial_ms": 50, "factor": 2, "jitter": 0.1, "max_ms": 1000}
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FaultyUpstream]:
    with FaultyUpstream() as server:
        yield server


def deployment(fake: FaultyUpstream, model: str, **more: Any) -> dict[str, Any]:
    return {"provider": "openai", "base_url": fake.base_url, "model": model, **more}


@pytest.fixture(scope="module")
def unanswered() -> Iterator[str]:
    """The base URL of a port whose connection queue is full, so connecting hangs: the kernel
    drops the handshakes it has no room for."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):  # fills the queue
            yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def relay(fake: FaultyUpstream, unanswered: str, tmp_path_factory: Any) -> Iterator[Running]:
    one = {"retry": RETRY, "timeouts": {"first_byte": 0.5, "idle": 0.3, "total": 5}}
    config = {
        "cooldown": {"failures": 1_000_000},
        "models": [
            {"name": "flaky", **one, "deployments": [deployment(fake, "flaky")]},
            {"name": "pair", **one, "deployments": [
                deployment(fake, "pair-a", id="a", headers={"x-fault": "500"}),
                deployment(fake, "pair-b", id="b"),
            ]},
            {"name": "short", **one, "timeouts": {"total": 1}, "deployments": [
                deployment(fake, "short")
            ]},
            {"name": "breaker", "retry": {"attempts": 1}, "cooldown": {"failures": 2,
             "seconds": 0.5}, "deployments": [deployment(fake, "breaker")]},
            {"name": "smart", **one, "fallbacks": ["cheap"], "deployments": [
                deployment(fake, "smart")
            ]},
            {"name": "cheap", **one, "deployments": [deployment(fake, "cheap")]},
            {"name": "guarded", **one, "fallbacks": ["cheap"], "fallback_on_content_filter": True,
             "deployments": [deployment(fake, "guarded")]},
            {"name": "unreachable", "retry": {**RETRY, "attempts": 2}, "deployments": [
                {"provider": "openai", "base_url": unanswered, "model": "unreachable"}
            ]},
            {"name": "weighted", "routing": "weighted_random", "deployments": [
                deployment(fake, "w1", id="w1"), deployment(fake, "w2", id="w2", weight=3)
            ]},
            {"name": "narrow", "retry": {"attempts": 1}, "deployments": [
                deployment(fake, "narrow", max_parallel=1, max_queue=1, queue_timeout=5)
            ]},
        ],
    }  # fmt: skip
    with run_gateway(config, tmp_path_factory.mktemp("resilience")) as running:
        yield running


@pytest.fixture(scope="module")
def http(relay: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=relay.v1, timeout=30) as client:
        yield client


def ask(http: httpx.Client, model: str, **more: Any) -> httpx.Response:
    return http.post("/chat/completions", json={"model": model, "messages": HI, **more})


def gaps(fake: FaultyUpstream, model: str) -> list[float]:
    times = [a.at for a in fake.seen(model)]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


@pytest.fixture(autouse=True)
def _fresh(fake: FaultyUpstream) -> None:
    fake.arrivals.clear()


# -- retries ----------------------------------------------------------------------------------


def test_retries_5xx_with_exponential_backoff(http: httpx.Client, fake: FaultyUpstream) -> None:
    fake.plan("flaky", ["500", "503"])
    reply = ask(http, "flaky")
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == "Hello there"
    assert reply.headers["x-llmrelay-attempts"] == "3"
    assert reply.headers["x-llmrelay-deployment"] == "flaky/0"
    first, second = gaps(fake, "flaky")
    assert 0.045 <= first < 0.2  # 50 ms ± 10 %
    assert 0.09 <= second < 0.3  # 100 ms ± 10 %


@pytest.mark.parametrize("fault", ["408", "409", "529", "reset", "stall:2"])
def test_what_is_retried(http: httpx.Client, fake: FaultyUpstream, fault: str) -> None:
    fake.plan("flaky", [fault])
    reply = ask(http, "flaky")
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-llmrelay-attempts"] == "2"


@pytest.mark.parametrize("fault", ["400", "404", "422"])
def test_other_4xx_is_never_retried(http: httpx.Client, fake: FaultyUpstream, fault: str) -> None:
    fake.plan("flaky", [fault])
    reply = ask(http, "flaky")
    assert reply.status_code == int(fault)
    assert reply.headers["x-llmrelay-attempts"] == "1"
    assert len(fake.seen("flaky")) == 1


def test_gives_up_after_the_configured_attempts(http: httpx.Client, fake: FaultyUpstream) -> None:
    fake.plan("flaky", ["500", "500", "500", "ok"])
    reply = ask(http, "flaky")
    assert reply.status_code == 500
    assert reply.json()["error"]["message"] == "Injected 500."
    assert len(fake.seen("flaky")) == 3


@pytest.mark.parametrize(
    ("fault", "least"),
    [("429:1", 1.0), ("429-ms:400", 0.4), ("429-date:2", 1.0), ("429-reset:450ms", 0.45)],
)
def test_the_asked_delay_wins(
    http: httpx.Client, fake: FaultyUpstream, fault: str, least: float
) -> None:
    fake.plan("flaky", [fault])
    reply = ask(http, "flaky")
    assert reply.status_code == 200
    (gap,) = gaps(fake, "flaky")
    assert least <= gap < least + 1.2


def test_an_asked_delay_past_the_deadline_is_not_waited(
    http: httpx.Client, fake: FaultyUpstream
) -> None:
    fake.plan("short", ["429:30"])
    started = time.monotonic()
    reply = ask(http, "short")
    assert time.monotonic() - started < 0.5
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "30"
    assert len(fake.seen("short")) == 1


def test_a_retry_moves_to_another_deployment(http: httpx.Client, fake: FaultyUpstream) -> None:
    attempts = []
    for _ in range(6):
        reply = ask(http, "pair")
        assert reply.status_code == 200
        assert reply.headers["x-llmrelay-deployment"] == "b"
        attempts.append(int(reply.headers["x-llmrelay-attempts"]))
    # A request that went to the failing deployment first went to the other one next.
    assert set(attempts) <= {1, 2}
    assert len(fake.seen("pair-a")) == sum(a - 1 for a in attempts)
    assert len(fake.seen("pair-b")) == 6


# -- timeouts ---------------------------------------------------------------------------------


def test_a_stall_before_the_headers_times_out_and_is_retried(
    http: httpx.Client, fake: FaultyUpstream
) -> None:
    fake.plan("flaky", ["stall:3", "stall:3"])
    started = time.monotonic()
    reply = ask(http, "flaky", stream=True)
    assert reply.status_code == 200
    assert reply.text.endswith("data: [DONE]\n\n")
    assert reply.headers["x-llmrelay-attempts"] == "3"
    assert time.monotonic() - started < 2  # two first-byte timeouts of 0.5 s, and backoff


def test_the_client_can_lower_a_timeout(http: httpx.Client, fake: FaultyUpstream) -> None:
    fake.plan("flaky", ["stall:0.3"])
    reply = ask(http, "flaky")  # within the model's 0.5 s
    assert reply.headers["x-llmrelay-attempts"] == "1"
    fake.plan("flaky", ["stall:0.3"])
    lowered = http.post(
        "/chat/completions",
        json={"model": "flaky", "messages": HI},
        headers={"x-llmrelay-timeout-first-byte": "0.1"},
    )
    assert lowered.status_code == 200
    assert lowered.headers["x-llmrelay-attempts"] == "2"
    raised = http.post(
        "/chat/completions",
        json={"model": "flaky", "messages": HI},
        headers={"x-llmrelay-timeout-total": "soon"},
    )
    assert raised.status_code == 400
    assert raised.json()["error"]["param"] == "x-llmrelay-timeout-total"


def test_the_client_can_lower_the_connect_timeout(http: httpx.Client) -> None:
    """The model's connect timeout is 10 s; the client's 0.2 s holds for each of its two
    attempts, and a connect timeout is retried."""
    started = time.monotonic()
    reply = http.post(
        "/chat/completions",
        json={"model": "unreachable", "messages": HI},
        headers={"x-llmrelay-timeout-connect": "0.2"},
    )
    assert time.monotonic() - started < 1.5
    assert reply.status_code == 504
    assert reply.headers["x-llmrelay-attempts"] == "2"


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("stall-stream:3", "stream stalled"),
        ("truncate", "ended its stream early"),
        ("malformed", "malformed"),
    ],
)
def test_a_stream_that_breaks_after_it_started_ends_cleanly(
    http: httpx.Client, fake: FaultyUpstream, fault: str, message: str
) -> None:
    fake.plan("flaky", [fault])
    started = time.monotonic()
    reply = ask(http, "flaky", stream=True)
    assert time.monotonic() - started < 2
    assert reply.status_code == 200
    events = [line for line in reply.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert '"error"' in events[-2] and message in events[-2]
    assert len(fake.seen("flaky")) == 1  # never retried once the client had bytes


def test_a_slow_drip_times_out_before_its_first_event(
    http: httpx.Client, fake: FaultyUpstream
) -> None:
    """One byte every 0.2 s never makes a whole event within the first-byte timeout, and the
    client has seen nothing, so the request is tried again."""
    fake.plan("flaky", ["drip:0.2"])
    reply = ask(http, "flaky", stream=True)
    assert reply.text.endswith("data: [DONE]\n\n")
    assert reply.headers["x-llmrelay-attempts"] == "2"


def test_the_total_deadline_holds(http: httpx.Client, fake: FaultyUpstream) -> None:
    fake.plan("short", ["stall:3"])
    started = time.monotonic()
    reply = ask(http, "short")
    assert time.monotonic() - started < 1.3
    assert reply.status_code == 504
    assert len(fake.seen("short")) == 1


# -- cooldown ---------------------------------------------------------------------------------


def test_failures_in_a_row_cool_a_deployment_down(http: httpx.Client, fake: FaultyUpstream) -> None:
    fake.plan("breaker", ["500", "500"])
    assert ask(http, "breaker").status_code == 500
    assert ask(http, "breaker").status_code == 500
    resting = ask(http, "breaker")
    assert resting.status_code == 503
    assert resting.json()["error"]["code"] == "deployments_cooling_down"
    assert resting.headers["retry-after"] == "1"
    assert len(fake.seen("breaker")) == 2  # the resting deployment was not asked
    time.sleep(0.55)
    assert ask(http, "breaker").status_code == 200  # the half-open probe
    assert ask(http, "breaker").status_code == 200


def test_a_probe_that_starts_a_stream_ends_the_rest(
    relay: Running, http: httpx.Client, fake: FaultyUpstream
) -> None:
    """The deployment answered, so it takes requests again while the probe's stream goes on."""
    fake.plan("breaker", ["500", "500", "stall-stream:1"])
    assert ask(http, "breaker").status_code == 500
    assert ask(http, "breaker").status_code == 500
    time.sleep(0.55)
    body = {"model": "breaker", "messages": HI, "stream": True}
    with (
        httpx.Client(base_url=relay.v1, timeout=10) as client,
        client.stream("POST", "/chat/completions", json=body) as probe,
    ):
        pieces = probe.iter_bytes()
        next(pieces)
        assert ask(http, "breaker").status_code == 200
        assert b"".join(pieces).endswith(b"data: [DONE]\n\n")


# -- fallbacks --------------------------------------------------------------------------------


def test_falls_back_when_retries_fail(http: httpx.Client, fake: FaultyUpstream) -> None:
    fake.plan("smart", ["500", "500", "500"])
    reply = ask(http, "smart")
    assert reply.status_code == 200
    assert reply.headers["x-llmrelay-deployment"] == "cheap/0"
    assert reply.headers["x-llmrelay-attempts"] == "4"


def test_falls_back_when_the_context_window_is_exceeded(
    http: httpx.Client, fake: FaultyUpstream
) -> None:
    fake.plan("smart", ["400-context"])
    reply = ask(http, "smart", stream=True)
    assert reply.status_code == 200
    assert reply.headers["x-llmrelay-deployment"] == "cheap/0"
    assert len(fake.seen("smart")) == 1  # not retried: the same prompt would not fit again
    fake.plan("smart", ["400"])
    assert ask(http, "smart").status_code == 400  # other 4xx: no fallback either


@pytest.mark.parametrize("fault", ["filtered", "400-filter"])
@pytest.mark.parametrize("stream", [False, True])
def test_falls_back_on_the_content_filter_when_configured(
    http: httpx.Client, fake: FaultyUpstream, fault: str, stream: bool
) -> None:
    fake.plan("guarded", [fault])
    reply = ask(http, "guarded", stream=stream)
    assert reply.status_code == 200
    assert reply.headers["x-llmrelay-deployment"] == "cheap/0"
    assert reply.headers["x-llmrelay-attempts"] == "2"
    assert "content_filter" not in reply.text
    assert len(fake.seen("guarded")) == 1  # not retried: the same filter would stop it again
    assert "Hello" in reply.text


def test_a_stream_filtered_after_its_first_words_is_not_taken_back(
    http: httpx.Client, fake: FaultyUpstream
) -> None:
    fake.plan("guarded", ["filtered-late"])
    reply = ask(http, "guarded", stream=True)
    assert reply.headers["x-llmrelay-deployment"] == "guarded/0"
    events = [line for line in reply.text.split("\n") if line.startswith("data: {")]
    chunks = [json.loads(line.removeprefix("data: ")) for line in events]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello"
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert len(fake.seen("cheap")) == 0


def test_the_content_filter_is_final_unless_configured(
    http: httpx.Client, fake: FaultyUpstream
) -> None:
    fake.plan("smart", ["filtered"])
    reply = ask(http, "smart")
    assert reply.headers["x-llmrelay-deployment"] == "smart/0"
    assert reply.json()["choices"][0]["finish_reason"] == "content_filter"
    assert len(fake.seen("cheap")) == 0


# -- balancing and limits ---------------------------------------------------------------------


def test_weighted_random_follows_the_weights(http: httpx.Client) -> None:
    counts = collections.Counter(
        ask(http, "weighted").headers["x-llmrelay-deployment"] for _ in range(400)
    )
    assert 0.15 < counts["w1"] / 400 < 0.35  # weight 1 of 4


def test_a_full_queue_is_a_429(http: httpx.Client, fake: FaultyUpstream) -> None:
    """One slot and one place in the queue: a third request at once is refused."""
    fake.plan("narrow", ["stall:0.6", "ok"])
    replies: list[httpx.Response] = []

    def one() -> None:
        replies.append(ask(http, "narrow"))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    refused = ask(http, "narrow")
    for thread in threads:
        thread.join()
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "queue_full"
    assert refused.headers["retry-after"] == "1"
    assert [r.status_code for r in replies] == [200, 200]  # the queued one waited its turn


# -- cancellation -----------------------------------------------------------------------------


def test_a_client_that_leaves_closes_the_upstream_request(
    relay: Running, fake: FaultyUpstream
) -> None:
    fake.plan("flaky", ["stall-stream:5"])
    body = {"model": "flaky", "messages": HI, "stream": True}
    with (
        httpx.Client(base_url=relay.v1, timeout=10) as client,
        client.stream("POST", "/chat/completions", json=body) as reply,
    ):
        next(reply.iter_bytes())
        left = time.monotonic()
    for _ in range(100):
        arrival = fake.seen("flaky")[0]
        if arrival.ended is not None:
            break
        time.sleep(0.01)
    assert arrival.hung_up
    assert arrival.ended is not None and arrival.ended - left < 0.1
