"""Runs one llama.cpp model off the event loop, one generation at a time, first come first served.

A single-worker executor is the queue: it serialises access to the model (which
is not thread-safe) in arrival order, while llama.cpp's C calls release the
GIL so the event loop keeps serving other requests. Each generation checks a
cancel flag between tokens, so a client that leaves stops it within one token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ...errors import InvalidRequest, RelayError

T = TypeVar("T")

_END = object()


class GenerationError(RelayError):
    """llama.cpp failed in a way the request did not cause."""


class Engine:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self.model: Any = None

    async def run(self, work: Callable[[Any], T]) -> T:
        """Run a short call (load, tokenize) on the model's thread."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, work, self.model)
        except ValueError as exc:
            raise _translate(exc) from exc

    async def stream(self, work: Callable[[Any], Iterator[T]]) -> AsyncIterator[T]:
        """Run a generation on the model's thread, yielding its items as they come."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def produce(model: Any) -> None:
            items: Iterator[T] | None = None
            try:
                if cancelled.is_set():  # the client left while this waited its turn
                    return
                items = work(model)
                for item in items:
                    if cancelled.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, item)
            except BaseException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        done = loop.run_in_executor(self._executor, produce, self.model)
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise _translate(item) from item
                yield item
        finally:
            cancelled.set()
            done.add_done_callback(_consume)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.model = None


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _translate(exc: BaseException) -> RelayError:
    if isinstance(exc, RelayError):
        return exc
    text = str(exc)
    if "context window" in text or "exceed context" in text:
        return InvalidRequest(
            f"The request does not fit the model's context window: {text}",
            param="messages",
            code="context_length_exceeded",
        )
    return GenerationError(f"The local model failed: {type(exc).__name__}: {text}")
