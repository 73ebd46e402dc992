"""The metrics' exposition, parsed as Prometheus parses it: buckets that hold values at
their bound, cumulative counts, and series per model and outcome."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from llmrelay.metrics import Metrics
from llmrelay.trace import Trace, Usage


def _ended(model: str, seconds: float, status: int = 200, attempts: int = 1) -> Trace:
    trace = Trace()
    trace.model = model
    trace.status = status
    trace.attempts = attempts
    trace.usage = Usage(3, 4, 0, "reported")
    trace.cost = 0.25
    trace.total = seconds  # as finish() would have noted it
    return trace


def _samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = asyncio.run(metrics.render(None)).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_value_on_a_bound_counts_in_that_bucket_and_buckets_add_up() -> None:
    metrics = Metrics()
    for seconds in (0.005, 0.02, 0.5, 400):
        metrics.observe(_ended("m", seconds))
    samples = _samples(metrics)

    def bucket(le: str) -> float:
        labels = frozenset({("model", "m"), ("le", le)})
        return samples[("llmrelay_request_duration_seconds_bucket", labels)]

    assert [bucket(le) for le in ("0.005", "0.01", "0.025", "0.5", "300.0", "+Inf")] == [
        1, 1, 2, 3, 3, 4,
    ]  # fmt: skip
    count = ("llmrelay_request_duration_seconds_count", frozenset({("model", "m")}))
    assert samples[count] == 4
    total = ("llmrelay_request_duration_seconds_sum", frozenset({("model", "m")}))
    assert samples[total] == 0.005 + 0.02 + 0.5 + 400


def test_requests_tokens_cost_and_retries_are_counted_per_model_and_outcome() -> None:
    metrics = Metrics()
    metrics.observe(_ended("a", 0.1))
    metrics.observe(_ended("a", 0.1, status=502, attempts=3))
    metrics.observe(_ended("b", 0.1))
    metrics.in_flight = 2
    samples = _samples(metrics)

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    ok = {"status": "200", "error_type": ""}
    assert value("llmrelay_requests_total", model="a", **ok) == 1
    assert value("llmrelay_requests_total", model="a", status="502", error_type="") == 1
    assert value("llmrelay_requests_total", model="b", **ok) == 1
    assert value("llmrelay_tokens_total", model="a", kind="prompt") == 6
    assert value("llmrelay_tokens_total", model="a", kind="completion") == 8
    assert value("llmrelay_cost_usd_total", model="a") == 0.5
    assert value("llmrelay_retries_total", model="a") == 2
    assert value("llmrelay_retries_total", model="b") == 0
    assert value("llmrelay_requests_in_flight") == 2
    assert value("llmrelay_jobs_queue_depth") == 0
