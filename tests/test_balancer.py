"""The routing strategies and a deployment's slots, on real deployments with the clock given."""

from __future__ import annotations

import asyncio
import collections

import pytest

from llmrelay.errors import RelayError
from llmrelay.resilience.balancer import choose, latency, least_in_flight
from llmrelay.resilience.deployment import Deployment
from llmrelay.resilience.policy import Cooldown, Retry


def deployment(name: str, weight: float = 1, max_parallel: int | None = None) -> Deployment:
    return Deployment(
        name, None,  # type: ignore[arg-type]  # the balancer never touches the provider
        weight=weight, max_parallel=max_parallel, max_queue=1, queue_timeout=0.05,
        cooldown=Cooldown(failures=2, seconds=10),
    )  # fmt: skip


def test_least_in_flight_counts_in_flight_per_weight() -> None:
    a, b = deployment("a"), deployment("b", weight=4)
    a.in_flight, b.in_flight = 1, 3  # b carries 3/4 of a request per unit of weight
    assert {least_in_flight([a, b]).id for _ in range(50)} == {"b"}
    b.in_flight = 5
    assert {least_in_flight([a, b]).id for _ in range(50)} == {"a"}


def test_latency_prefers_the_faster_of_two_draws() -> None:
    fast, slow = deployment("fast"), deployment("slow")
    fast.succeeded(0.01)
    slow.succeeded(0.5)
    picks = collections.Counter(latency([fast, slow]).id for _ in range(2000))
    # Only a draw of slow twice (about a quarter of draws) picks it.
    assert 0.18 < picks["slow"] / 2000 < 0.32


def test_choose_skips_resting_and_full_deployments_and_avoids_the_last_failure() -> None:
    a, b = deployment("a", max_parallel=1), deployment("b")
    assert choose([a, b], least_in_flight, 0.0, avoid=a) is b
    a.failed(0.0, rate_limited=False, asked=None)
    a.failed(0.0, rate_limited=False, asked=30)
    assert a.tripped and a.resting_until == 30  # the asked pause outlasts the cooldown
    assert {choose([a, b], least_in_flight, 1.0, None) for _ in range(20)} == {b}
    b.failed(0.0, rate_limited=True, asked=None)
    b.failed(0.0, rate_limited=True, asked=None)
    assert choose([a, b], least_in_flight, 1.0, None) is None
    # After its rest, one request probes a tripped deployment; no other goes with it.
    assert choose([a, b], least_in_flight, 11.0, None) is b
    assert b.try_acquire() and b.probing
    assert choose([b], least_in_flight, 11.0, None) is None
    b.succeeded(0.1)
    b.release()
    assert choose([b], least_in_flight, 11.0, None) is b


def test_a_slot_passes_to_the_queue_then_the_queue_fills() -> None:
    async def run() -> None:
        one = deployment("one", max_parallel=1)
        assert one.try_acquire()
        waiting = asyncio.ensure_future(one.queue_for_slot())
        await asyncio.sleep(0)
        with pytest.raises(RelayError, match="queue is full"):
            await one.queue_for_slot()
        one.release()
        await waiting  # got the slot that was released
        assert one.in_flight == 1
        with pytest.raises(RelayError, match="no slot came free"):
            await one.queue_for_slot()
        assert not one._waiters

    asyncio.run(run())


def test_backoff_grows_by_the_factor_within_the_jitter() -> None:
    retry = Retry(initial_ms=100, factor=2, jitter=0.1, max_ms=350)
    for attempt, base in ((1, 0.1), (2, 0.2), (3, 0.35), (4, 0.35)):
        assert base * 0.9 <= retry.backoff(attempt) <= base * 1.1
