"""What serving one request took: its attempts and the deployment that answered, for the
``x-llmrelay-*`` response headers and the access log, and the timeouts its client lowered."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar

from ..errors import InvalidRequest

# The request headers a client lowers each timeout with, for that request only.
TIMEOUT_HEADERS = {
    b"x-llmrelay-timeout-connect": "connect",
    b"x-llmrelay-timeout-first-byte": "first_byte",
    b"x-llmrelay-timeout-idle": "idle",
    b"x-llmrelay-timeout-total": "total",
}


class Trace:
    __slots__ = ("asked_timeouts", "attempts", "deployment")

    def __init__(self) -> None:
        self.attempts = 0
        self.deployment: str | None = None
        self.asked_timeouts: dict[str, float] = {}

    def read_timeouts(self, request_headers: Mapping[bytes, bytes]) -> None:
        """The timeouts the client lowered; a value that is no number of seconds is a 400."""
        for header, name in TIMEOUT_HEADERS.items():
            value = request_headers.get(header)
            if value is not None:
                self.asked_timeouts[name] = _seconds(header, value)

    def attempted(self, deployment: str) -> None:
        self.attempts += 1
        self.deployment = deployment

    def summary(self) -> str:
        """For the access log: the deployment that served, and the attempts it took."""
        if not self.attempts:
            return ""
        return f" {self.deployment} attempts={self.attempts}"

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        if not self.attempts:
            return []
        return [
            (b"x-llmrelay-attempts", str(self.attempts).encode()),
            (b"x-llmrelay-deployment", str(self.deployment).encode()),
        ]


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
