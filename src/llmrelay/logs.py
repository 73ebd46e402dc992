"""Logging set-up: every line is a JSON object (or, with ``log_format: text``, a line of
text) that carries the id of the request it belongs to.

The access log writes a line per request, with its key id (never the key),
model, deployment, status, tokens, cost, time to first token and total time, so
its cost is on the hot path. Once ``configure`` has installed the gateway's
handler, access lines skip the logging machinery and go straight to its
buffered stream, which a background thread flushes four times a second (every
other line is flushed at once), with the timestamp formatted once per second.
With any other handler set-up they go through ``logging`` as usual.
"""

from __future__ import annotations

import atexit
import io
import logging
import os
import threading
import time
from contextvars import ContextVar
from typing import Any

import orjson

from .trace import Trace

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
FLUSH_SECONDS = 0.25
ACCESS_LOGGER = "llmrelay.access"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class SecondFormatter(logging.Formatter):
    """Formats each second's timestamp once, not once per line."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.stamp(record.created)

    def stamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def line(self, now: float, fields: dict[str, Any]) -> str:
        """An access line from its fields."""
        stamp = self.stamp(now)
        return f"{stamp} INFO [{request_id_var.get()}] {ACCESS_LOGGER}: {_text(fields)}"


class JSONFormatter(SecondFormatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.stamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()

    def line(self, now: float, fields: dict[str, Any]) -> str:
        entry = {
            "ts": self.stamp(now),
            "level": "info",
            "logger": ACCESS_LOGGER,
            "request_id": request_id_var.get(),
            **fields,
        }
        return orjson.dumps(entry).decode()


class BufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that leaves flushing access lines to a timer."""

    def __init__(self, stream: io.TextIOBase) -> None:
        super().__init__(stream)
        threading.Thread(target=self._flush_often, name="log-flush", daemon=True).start()
        atexit.register(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            if record.name != ACCESS_LOGGER or record.levelno >= logging.WARNING:
                self.flush()
        except Exception:
            self.handleError(record)

    def _flush_often(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()


_access = logging.getLogger(ACCESS_LOGGER)
_fast: BufferedHandler | None = None


def access(trace: Trace, method: str, path: str) -> None:
    """Log one request that ended."""
    if not _access.isEnabledFor(logging.INFO):
        return
    fields = _fields(trace, method, path)
    handler = _fast
    if handler is None:
        _access.info(_text(fields))
        return
    formatter = handler.formatter
    assert isinstance(formatter, SecondFormatter)
    line = formatter.line(time.time(), fields)
    with handler.lock:  # type: ignore[union-attr]
        handler.stream.write(line + "\n")


def _text(fields: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


def _fields(trace: Trace, method: str, path: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "method": method,
        "path": path,
        "status": trace.status,
        "ms": round(trace.duration * 1000, 2),
    }
    if trace.key is not None:
        fields["key_id"] = trace.key.id
    if trace.model is not None:
        usage = trace.usage
        fields.update(
            model=trace.model,
            deployment=trace.deployment,
            attempts=trace.attempts,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            tokens_estimated=usage.estimated if usage else None,
            cost_usd=round(trace.cost, 8),
            cache=trace.cache,
            ttft_ms=None if trace.first_token is None else round(trace.first_token * 1000, 2),
            overhead_ms=round(trace.overhead_ms(), 2),
        )
    if trace.error_type is not None:
        fields["error_type"] = trace.error_type
    return fields


def configure(level: str, fmt: str = "json") -> None:
    global _fast
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(isinstance(h, BufferedHandler) for h in root.handlers):
        return  # ``serve`` configured this process already
    raw = io.BufferedWriter(io.FileIO(os.dup(2), "w"), buffer_size=1 << 16)
    handler = BufferedHandler(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"))
    handler.setFormatter(JSONFormatter() if fmt == "json" else SecondFormatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    root.handlers[:] = [handler]
    _fast = handler
    # Uvicorn's own access log would repeat ours without the request id.
    logging.getLogger("uvicorn.access").disabled = True


def flush() -> None:
    """Write out buffered lines now, as the server stops: a signal may end it before atexit."""
    for handler in logging.getLogger().handlers:
        handler.flush()
