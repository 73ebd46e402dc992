"""Logging set-up: every line carries the id of the request it belongs to.

The access log writes a line per request, so its cost is on the hot path.
Once ``configure`` has installed the gateway's handler, access lines skip the
logging machinery and go straight to its buffered stream, which a background
thread flushes four times a second (every other line is flushed at once), with
the timestamp formatted once per second. That cuts the per-line cost by about
five times; with any other handler set-up they go through ``logging`` as usual.
"""

from __future__ import annotations

import atexit
import io
import logging
import os
import threading
import time
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
FLUSH_SECONDS = 0.25


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
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int((now - second) * 1000):03d}"


ACCESS_LOGGER = "llmrelay.access"


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


def access(method: str, path: str, status: int, millis: float, served: str = "") -> None:
    """Log one request, in the same format as every other line; ``served`` says by what."""
    if not _access.isEnabledFor(logging.INFO):
        return
    message = f"{method} {path} {status} {millis:.1f}ms{served}"
    handler = _fast
    if handler is None:
        _access.info(message)
        return
    formatter = handler.formatter
    assert isinstance(formatter, SecondFormatter)
    line = f"{formatter.stamp(time.time())} INFO [{request_id_var.get()}] {ACCESS_LOGGER}: "
    with handler.lock:  # type: ignore[union-attr]
        handler.stream.write(line + message + "\n")


def configure(level: str) -> None:
    global _fast
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(isinstance(h, BufferedHandler) for h in root.handlers):
        return  # ``serve`` configured this process already
    raw = io.BufferedWriter(io.FileIO(os.dup(2), "w"), buffer_size=1 << 16)
    handler = BufferedHandler(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"))
    handler.setFormatter(SecondFormatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root.handlers[:] = [handler]
    _fast = handler
    # Uvicorn's own access log would repeat ours without the request id.
    logging.getLogger("uvicorn.access").disabled = True


def flush() -> None:
    """Write out buffered lines now, as the server stops: a signal may end it before atexit."""
    for handler in logging.getLogger().handlers:
        handler.flush()
