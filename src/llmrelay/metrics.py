"""Prometheus metrics, served at ``/metrics``: requests by model, status and error type,
latency and time to first token, tokens and cost, requests in flight, retries, cache
hits, and the jobs waiting for a worker.

Each gateway keeps its own registry, so that several gateways in one process
(as in the tests) count apart. Labels hold model names and statuses only:
never a key, and never content.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator
from itertools import accumulate

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .trace import Trace

# Seconds: from a cached reply's few milliseconds to a long generation's minutes.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_BOUNDS = [*map(str, map(float, BUCKETS)), "+Inf"]
CONTENT_TYPE = CONTENT_TYPE_LATEST


class _Histogram:
    """Counts per bucket (not yet cumulative) and their sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(BUCKETS, value)] += 1  # the first bound at or above it
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        return list(zip(_BOUNDS, accumulate(self.counts), strict=True))


class _ModelSeries:
    """One model's series."""

    __slots__ = (
        "cache_hits",
        "completion_tokens",
        "cost",
        "first_token",
        "latency",
        "prompt_tokens",
        "retries",
    )

    def __init__(self) -> None:
        self.latency = _Histogram()
        self.first_token = _Histogram()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = 0.0
        self.retries = 0
        self.cache_hits = 0


class Metrics(Collector):
    """The gateway's series, kept as plain numbers and turned into Prometheus metrics when
    scraped. Every count is made on the event loop's thread, so none needs the lock that
    each of prometheus_client's own metrics takes per change: a request's eight changes
    were a measurable share of its time in the gateway."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._jobs_waiting = 0
        self._of: dict[str, _ModelSeries] = {}
        self._requests: dict[tuple[str, int, str], int] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def observe(self, trace: Trace) -> None:
        """Count a request that reached a model, once it has ended."""
        model = trace.model or ""
        of = self._of.get(model)
        if of is None:
            of = self._of[model] = _ModelSeries()
        outcome = (model, trace.status, trace.error_type or "")
        self._requests[outcome] = self._requests.get(outcome, 0) + 1
        of.latency.observe(trace.duration)
        if trace.first_token is not None:
            of.first_token.observe(trace.first_token)
        usage = trace.usage
        if usage is not None:
            of.prompt_tokens += usage.prompt_tokens
            of.completion_tokens += usage.completion_tokens
        of.cost += trace.cost
        if trace.attempts > 1:
            of.retries += trace.attempts - 1
        if trace.cache == "hit":
            of.cache_hits += 1

    async def render(self, jobs_waiting: Callable[[], Awaitable[int]] | None) -> bytes:
        if jobs_waiting is not None:
            self._jobs_waiting = await jobs_waiting()
        return generate_latest(self.registry)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        requests = CounterMetricFamily(
            "llmrelay_requests",
            "Requests that reached a model, by model, HTTP status and error type.",
            labels=["model", "status", "error_type"],
        )
        for (model, status, error_type), count in self._requests.items():
            requests.add_metric([model, str(status), error_type], count)
        yield requests
        yield self._histogram(
            "llmrelay_request_duration_seconds",
            "Time from a request's arrival to its last byte.",
            lambda of: of.latency,
        )
        yield self._histogram(
            "llmrelay_time_to_first_token_seconds",
            "Time from a streamed request's arrival to its first token.",
            lambda of: of.first_token,
        )
        tokens = CounterMetricFamily(
            "llmrelay_tokens", "Tokens used, by model and kind.", labels=["model", "kind"]
        )
        for model, of in self._of.items():
            tokens.add_metric([model, "prompt"], of.prompt_tokens)
            tokens.add_metric([model, "completion"], of.completion_tokens)
        yield tokens
        yield self._counter("llmrelay_cost_usd", "Cost in USD, by model.", lambda of: of.cost)
        yield GaugeMetricFamily(
            "llmrelay_requests_in_flight", "HTTP requests being served.", value=self.in_flight
        )
        yield self._counter(
            "llmrelay_retries", "Upstream attempts after a request's first.", lambda of: of.retries
        )
        yield self._counter(
            "llmrelay_cache_hits", "Requests answered from the cache.", lambda of: of.cache_hits
        )
        yield GaugeMetricFamily(
            "llmrelay_jobs_queue_depth", "Jobs waiting for a worker.", value=self._jobs_waiting
        )

    def _counter(
        self, name: str, documentation: str, value: Callable[[_ModelSeries], float]
    ) -> CounterMetricFamily:
        family = CounterMetricFamily(name, documentation, labels=["model"])
        for model, of in self._of.items():
            family.add_metric([model], value(of))
        return family

    def _histogram(
        self, name: str, documentation: str, series: Callable[[_ModelSeries], _Histogram]
    ) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=["model"])
        for model, of in self._of.items():
            histogram = series(of)
            family.add_metric([model], histogram.buckets(), histogram.sum)
        return family
