"""Timing the waits of every request with one timer per event loop.

A timer per wait (``asyncio.timeout`` around each read of a stream) costs a timer
handle each time, on the hot path of every request. Instead each request has a
``Watchdog`` whose ``arm`` and ``disarm`` only write a deadline, and one round per
``TICK`` checks the deadlines of the requests in flight, cancelling the task of
any that is overdue; the waiter recognises that cancellation as a timeout with
``fired``. A timeout so fires up to one tick late.
"""

from __future__ import annotations

import asyncio
import weakref

TICK = 0.05  # seconds


class Watchdog:
    def __init__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._loop = task.get_loop()
        self._until: float | None = None
        self._bit = False
        self._rounds = _rounds_of(self._loop)
        self._rounds.watch(self)

    def arm(self, seconds: float) -> None:
        """Cancel the task if the wait that starts now lasts more than ``seconds``."""
        self._until = self._loop.time() + seconds

    def disarm(self) -> None:
        self._until = None

    def fired(self) -> bool:
        """Whether the cancellation being handled is the watchdog's; if so, it is consumed."""
        if not self._bit:
            return False
        self._bit = False
        self._task.uncancel()
        return True

    def close(self) -> None:
        self._rounds.watching.discard(self)

    def check(self, now: float) -> None:
        if self._until is not None and now >= self._until:
            self._until = None
            self._bit = True
            self._task.cancel()


class _Rounds:
    """The one timer of a loop, running while any watchdog is open."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly, so that the table of loops does not keep a closed loop alive.
        self.loop = weakref.ref(loop)
        self.watching: set[Watchdog] = set()
        self.timer: asyncio.TimerHandle | None = None

    def watch(self, dog: Watchdog) -> None:
        self.watching.add(dog)
        loop = self.loop()
        if self.timer is None and loop is not None:
            self.timer = loop.call_later(TICK, self.round)

    def round(self) -> None:
        self.timer = None
        loop = self.loop()
        if loop is None:
            return
        now = loop.time()
        for dog in list(self.watching):
            dog.check(now)
        if self.watching:
            self.timer = loop.call_later(TICK, self.round)


_ROUNDS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Rounds] = weakref.WeakKeyDictionary()


def _rounds_of(loop: asyncio.AbstractEventLoop) -> _Rounds:
    rounds = _ROUNDS.get(loop)
    if rounds is None:
        rounds = _ROUNDS[loop] = _Rounds(loop)
    return rounds
