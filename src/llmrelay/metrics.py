"""Prometheus metrics, served at ``/metrics``: requests by model, status and error type,
latency and time to first token, tokens and cost, requests in flight, retries, cache
hits, and the jobs waiting for a worker.

Each gateway keeps its own registry, so that several gateways in one process
(as in the tests) count apart. Labels hold model names and statuses only:
never a key, and never content.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from .trace import Trace

# Seconds: from a cached reply's few milliseconds to a long generation's minutes.
# The *_created series, one per labelled series, double a scrape's size and say little.
disable_created_metrics()  # type: ignore[no-untyped-call]
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True, slots=True)
class _ModelSeries:
    """One model's series."""

    latency: Any
    first_token: Any
    prompt_tokens: Any
    completion_tokens: Any
    cost: Any
    retries: Any
    cache_hits: Any


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llmrelay_requests",
            "Requests that reached a model, by model, HTTP status and error type.",
            ["model", "status", "error_type"],
            registry=r,
        )
        self.latency = Histogram(
            "llmrelay_request_duration_seconds",
            "Time from a request's arrival to its last byte.",
            ["model"],
            buckets=BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "llmrelay_time_to_first_token_seconds",
            "Time from a streamed request's arrival to its first token.",
            ["model"],
            buckets=BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "llmrelay_tokens", "Tokens used, by model and kind.", ["model", "kind"], registry=r
        )
        self.cost = Counter("llmrelay_cost_usd", "Cost in USD, by model.", ["model"], registry=r)
        self.in_flight = Gauge(
            "llmrelay_requests_in_flight", "HTTP requests being served.", registry=r
        )
        self.retries = Counter(
            "llmrelay_retries", "Upstream attempts after a request's first.", ["model"], registry=r
        )
        self.cache_hits = Counter(
            "llmrelay_cache_hits", "Requests answered from the cache.", ["model"], registry=r
        )
        self.jobs_waiting = Gauge(
            "llmrelay_jobs_queue_depth", "Jobs waiting for a worker.", registry=r
        )
        self._of: dict[str, _ModelSeries] = {}
        self._requests: dict[tuple[str, int, str | None], Any] = {}

    def observe(self, trace: Trace) -> None:
        """Count a request that reached a model, once it has ended."""
        model = trace.model or ""
        of = self._of.get(model) or self._series_of(model)
        outcome = (model, trace.status, trace.error_type)
        counted = self._requests.get(outcome)
        if counted is None:
            counted = self._requests[outcome] = self.requests.labels(
                model, str(trace.status), trace.error_type or ""
            )
        counted.inc()
        of.latency.observe(trace.duration)
        if trace.first_token is not None:
            of.first_token.observe(trace.first_token)
        usage = trace.usage
        if usage is not None:
            of.prompt_tokens.inc(usage.prompt_tokens)
            of.completion_tokens.inc(usage.completion_tokens)
        if trace.cost:
            of.cost.inc(trace.cost)
        if trace.attempts > 1:
            of.retries.inc(trace.attempts - 1)
        if trace.cache == "hit":
            of.cache_hits.inc()

    def _series_of(self, model: str) -> _ModelSeries:
        # A label lookup costs a lock and a tuple each time: each model's are looked up once.
        series = self._of[model] = _ModelSeries(
            latency=self.latency.labels(model),
            first_token=self.first_token.labels(model),
            prompt_tokens=self.tokens.labels(model, "prompt"),
            completion_tokens=self.tokens.labels(model, "completion"),
            cost=self.cost.labels(model),
            retries=self.retries.labels(model),
            cache_hits=self.cache_hits.labels(model),
        )
        return series

    async def render(self, jobs_waiting: Callable[[], Awaitable[int]] | None) -> bytes:
        if jobs_waiting is not None:
            self.jobs_waiting.set(await jobs_waiting())
        return generate_latest(self.registry)
