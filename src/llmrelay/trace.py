"""What serving one request took, for its response headers, the access log, the metrics,
usage accounting and the request inspector: who asked, which model and deployment
answered after how many attempts, the tokens and their cost, the timings, and what
went upstream and came back.

It is filled in as the request passes through the gateway and read once, when
the request has ended. Recording costs attribute writes and references only:
bodies are kept as the bytes that were sent anyway, and turned into an
inspector record off the hot path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import InvalidRequest

if TYPE_CHECKING:
    from .keys.key import VirtualKey

# The request headers a client lowers each timeout with, for that request only.
TIMEOUT_HEADERS = {
    b"x-llmrelay-timeout-connect": "connect",
    b"x-llmrelay-timeout-first-byte": "first_byte",
    b"x-llmrelay-timeout-idle": "idle",
    b"x-llmrelay-timeout-total": "total",
}


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    # How the counts were obtained: "reported" by the backend (the local model counts with
    # its tokenizer), or an "estimate" from the text's length.
    counted_by: str = "reported"

    @property
    def estimated(self) -> bool:
        return self.counted_by != "reported"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def plus(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
            other.counted_by if other.estimated else self.counted_by,
        )


@dataclass(slots=True)
class UpstreamCall:
    """One attempt's request to an upstream, and the start of what came back."""

    deployment: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    secrets: list[str]  # to redact wherever they appear
    status: int | None = None
    response: bytearray = field(default_factory=bytearray)


class Trace:
    __slots__ = (
        "asked_timeouts",
        "attempts",
        "cache",
        "calls",
        "client_body",
        "connect",
        "cost",
        "created",
        "deployment",
        "error_type",
        "first_byte",
        "first_token",
        "injected",
        "keep_bytes",
        "key",
        "model",
        "parent",
        "queued",
        "rate_headers",
        "request_id",
        "saved",
        "started",
        "status",
        "total",
        "tries",
        "upstream_seconds",
        "usage",
    )

    def __init__(self, request_id: str = "-", keep_bytes: int = 0) -> None:
        self.request_id = request_id
        self.created = time.time()
        self.started = time.perf_counter()
        self.attempts = 0
        self.deployment: str | None = None
        self.asked_timeouts: dict[str, float] = {}
        self.key: VirtualKey | None = None
        self.model: str | None = None
        self.status = 0
        self.error_type: str | None = None
        self.usage: Usage | None = None
        self.cost = 0.0
        self.cache: str | None = None  # "hit" or "miss" when the cache was asked
        self.saved = 0.0  # what a cache hit saved
        self.upstream_seconds = 0.0  # time spent waiting on upstreams, not on the gateway
        self.queued = 0.0  # time spent waiting for a deployment's free slot
        self.connect = 0.0  # time spent opening connections to upstreams
        self.first_byte: float | None = None  # seconds from the start
        self.first_token: float | None = None
        self.total: float | None = None  # seconds, once the request has ended
        self.rate_headers: list[tuple[bytes, bytes]] = []
        # Each attempt's deployment, start and end (perf_counter seconds), for the spans.
        self.tries: list[list[Any]] = []
        self.parent: str | None = None  # the client's W3C traceparent, if it sent one
        # For the inspector: kept only when ``keep_bytes`` (its size limit) is not 0.
        self.keep_bytes = keep_bytes
        self.client_body: bytes | None = None
        self.injected: list[str] = []
        self.calls: list[UpstreamCall] = []

    def read_timeouts(self, request_headers: Mapping[bytes, bytes]) -> None:
        """The timeouts the client lowered; a value that is no number of seconds is a 400."""
        for header, name in TIMEOUT_HEADERS.items():
            value = request_headers.get(header)
            if value is not None:
                self.asked_timeouts[name] = _seconds(header, value)

    def attempted(self, deployment: str) -> None:
        self.attempts += 1
        self.deployment = deployment
        self.tries.append([deployment, time.perf_counter(), None])

    def waited(self, seconds: float) -> None:
        """Time spent on an upstream, which the overhead leaves out."""
        self.upstream_seconds += seconds
        if self.first_byte is None:
            self.first_byte = self.elapsed()
        if self.tries:
            self.tries[-1][2] = time.perf_counter()

    def moment(self, counter: float) -> float:
        """A ``perf_counter`` reading of this request as a Unix time."""
        return self.created + (counter - self.started)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def finish(self) -> None:
        """Note the request's end, once."""
        if self.total is None:
            self.total = self.elapsed()

    @property
    def duration(self) -> float:
        """Seconds from the request's start to its end, or to now while it runs."""
        return self.total if self.total is not None else self.elapsed()

    def sent(
        self, url: str, headers: Mapping[str, str], body: bytes, secrets: list[str]
    ) -> UpstreamCall | None:
        if not self.keep_bytes:
            return None
        call = UpstreamCall(self.deployment or "", url, headers, body, secrets)
        self.calls.append(call)
        return call

    def received(self, call: UpstreamCall | None, status: int, data: bytes) -> None:
        if call is not None:
            call.status = status
            self.streamed(call, data)

    def streamed(self, call: UpstreamCall | None, data: bytes) -> None:
        if call is not None and len(call.response) < self.keep_bytes:
            call.response += data[: self.keep_bytes - len(call.response)]

    def overhead_ms(self) -> float:
        """The time spent in the gateway, not waiting on an upstream: so far, or in all."""
        return max(0.0, self.duration - self.upstream_seconds) * 1000

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"x-llmrelay-overhead-ms", f"{self.overhead_ms():.2f}".encode())]
        if self.attempts:
            headers += [
                (b"x-llmrelay-attempts", str(self.attempts).encode()),
                (b"x-llmrelay-deployment", str(self.deployment).encode()),
            ]
        if self.cache is not None:
            headers.append((b"x-llmrelay-cache", self.cache.encode()))
        return headers + self.rate_headers


def _seconds(header: bytes, value: bytes) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if not seconds > 0:
        name = header.decode()
        raise InvalidRequest(f"The header {name} must be a positive number of seconds.", param=name)
    return seconds


trace_var: ContextVar[Trace | None] = ContextVar("trace", default=None)


def current_trace() -> Trace:
    """The trace of the request being served; a fresh one outside of a request."""
    return trace_var.get() or Trace()
