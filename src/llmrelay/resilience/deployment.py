"""One deployment of a model: a provider adapter, with the state the balancer and the
retry loop keep about it: requests in flight and queued, latency, and cooldown."""

from __future__ import annotations

import asyncio
from collections import deque

from ..errors import UpstreamError
from ..providers import Provider
from .policy import Cooldown

# How much each new latency sample moves the average.
EWMA_WEIGHT = 0.3


class QueueFull(UpstreamError):
    status = 429
    type = "rate_limit_error"
    default_code = "queue_full"


class Deployment:
    def __init__(
        self,
        id: str,
        provider: Provider,
        *,
        weight: float,
        max_parallel: int | None,
        max_queue: int,
        queue_timeout: float,
        cooldown: Cooldown,
    ) -> None:
        self.id = id
        self.provider = provider
        self.weight = weight
        self.max_parallel = max_parallel
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.cooldown = cooldown
        self.in_flight = 0
        self.latency = 0.0  # seconds, moving average; 0 until the first sample
        self.failures = 0  # in a row
        self.resting_until = 0.0  # monotonic time; once tripped, no request goes before it
        self.probing = False
        self.rate_limited = False  # whether the last failure was a 429
        self._waiters: deque[asyncio.Future[None]] = deque()

    # -- health ------------------------------------------------------------------------------

    @property
    def tripped(self) -> bool:
        return self.failures >= self.cooldown.failures

    def available(self, now: float) -> bool:
        """Whether a request may go to it now: it is not resting, and, once it has rested
        after tripping, no other request is already probing it."""
        return now >= self.resting_until and not (self.tripped and self.probing)

    @property
    def has_room(self) -> bool:
        return self.max_parallel is None or self.in_flight < self.max_parallel

    def succeeded(self, seconds: float) -> None:
        self.failures = 0
        self.latency = seconds if not self.latency else (
            EWMA_WEIGHT * seconds + (1 - EWMA_WEIGHT) * self.latency
        )  # fmt: skip

    def failed(self, now: float, rate_limited: bool, asked: float | None) -> None:
        """A failure worth a retry; enough in a row make the deployment rest, for the
        cooldown or for the pause its upstream asked for, whichever is longer."""
        self.failures += 1
        self.rate_limited = rate_limited
        if self.tripped:
            rest = max(self.cooldown.seconds, asked or 0.0)
            self.resting_until = max(self.resting_until, now + rest)

    # -- capacity ----------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take a slot if one is free; when none is, ``queue_for_slot``."""
        self.probing = self.tripped  # a request to a tripped deployment is its probe
        if self.has_room:
            self.in_flight += 1
            return True
        return False

    async def queue_for_slot(self) -> None:
        """Wait in the queue for a slot, which ``release`` hands over; a full queue, or a
        wait longer than the queue timeout, is a 429."""
        if len(self._waiters) >= self.max_queue:
            raise self._busy("its queue is full")
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.queue_timeout):
                await waiter  # release() hands its slot straight to us
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot came just as we gave up: pass it on
            else:
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise self._busy(f"no slot came free within {self.queue_timeout:g} s") from None
            raise

    def release(self) -> None:
        """Give the slot back, to the first in the queue if anyone waits. A probe that ended
        without a verdict (the client left) lets the next request probe."""
        self.probing = False
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on, so in_flight stays
                return
        self.in_flight -= 1

    def _busy(self, why: str) -> QueueFull:
        return QueueFull(
            f"The deployment '{self.id}' is at its limit of {self.max_parallel} requests "
            f"and {why}.",
            headers={"retry-after": "1"},
        )
