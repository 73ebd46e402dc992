"""A model as clients see it: one name, served by its deployments with balancing, retries,
timeouts and cooldowns, and by its fallbacks when all of that fails.

It has a provider's interface, so the endpoints need not know whether a name is one
upstream or several.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from ..errors import RelayError, UpstreamError, UpstreamMalformed, UpstreamTimeout
from ..providers import ChunkStream, Provider
from ..schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
    JSONObject,
    TokenizeRequest,
)
from ..trace import current_trace
from .balancer import STRATEGIES, Routing, choose
from .delays import asked_delay
from .deployment import Deployment
from .filtering import ContentFiltered, filtered, screened
from .policy import Retry, Timeouts
from .watchdog import Watchdog

log = logging.getLogger(__name__)

T = TypeVar("T")
Whole = Callable[[Provider], Awaitable[T]]
Streamed = Callable[[Provider], ChunkStream]

# Statuses worth another try: the upstream may answer differently next time.
RETRYABLE = frozenset({408, 409, 429})
_CONTEXT_WINDOW = re.compile(
    r"context[ _](length|window)|maximum context|prompt is too long|too many tokens", re.I
)


class AllResting(UpstreamError):
    """Every deployment of a model is cooling down."""


class ServedModel:
    def __init__(
        self,
        name: str,
        deployments: Sequence[Deployment],
        *,
        routing: Routing,
        retry: Retry,
        timeouts: Timeouts,
        fallbacks: Sequence[str],
        fallback_on_content_filter: bool,
        models: Mapping[str, ServedModel],
    ) -> None:
        self.name = name
        self.deployments = list(deployments)
        self.strategy = STRATEGIES[routing]
        self.retry = retry
        self.timeouts = timeouts
        self.fallbacks = list(fallbacks)
        self.fallback_on_content_filter = fallback_on_content_filter
        self._models = models  # every served model by name, for the fallbacks

    # -- what a provider offers ---------------------------------------------------------------

    @property
    def primary(self) -> Provider:
        return self.deployments[0].provider

    @property
    def ready(self) -> bool:
        return all(d.provider.ready for d in self.deployments)

    async def start(self) -> None:
        await asyncio.gather(*(d.provider.start() for d in self.deployments))

    async def close(self) -> None:
        await asyncio.gather(*(d.provider.close() for d in self.deployments))

    def card(self) -> JSONObject:
        return self.primary.card()

    async def chat(self, request: ChatCompletionRequest) -> JSONObject:
        return await self._whole(lambda p: p.chat(request))

    def chat_stream(self, request: ChatCompletionRequest) -> ChunkStream:
        return self._stream(lambda p: p.chat_stream(request))

    async def completion(self, request: CompletionRequest) -> JSONObject:
        return await self._whole(lambda p: p.completion(request))

    def completion_stream(self, request: CompletionRequest) -> ChunkStream:
        return self._stream(lambda p: p.completion_stream(request))

    async def embeddings(self, request: EmbeddingRequest) -> JSONObject:
        return await self._whole(lambda p: p.embeddings(request))

    # Counting and tokenizing are local or cheap questions about the model, not generations.
    async def count_tokens(self, request: ChatCompletionRequest) -> int:
        return await self.primary.count_tokens(request)

    async def tokenize(self, request: TokenizeRequest) -> JSONObject:
        return await self.primary.tokenize(request)

    async def detokenize(self, request: DetokenizeRequest) -> JSONObject:
        return await self.primary.detokenize(request)

    # -- the chain: this model, then its fallbacks ---------------------------------------------

    @functools.cached_property
    def _chain(self) -> list[ServedModel]:
        """This model and its fallbacks, theirs after them, each once."""
        chain: list[ServedModel] = []
        pending = [self]
        while pending:
            model = pending.pop(0)
            if model not in chain:
                chain.append(model)
                pending += [self._models[name] for name in model.fallbacks]
        return chain

    def _falls_back(self, error: RelayError) -> bool:
        """Whether a failure that retrying did not cure sends the request to a fallback."""
        if _retryable(error):
            return True
        if error.code == "context_length_exceeded" or _CONTEXT_WINDOW.search(error.message):
            return True
        return self.fallback_on_content_filter and error.code == "content_filter"

    @staticmethod
    def _fall_back(chain: list[ServedModel], model: ServedModel, error: RelayError) -> None:
        """Raise ``error`` unless ``model`` hands the request on to the next model in ``chain``."""
        if model is chain[-1] or not model._falls_back(error):
            raise error
        log.warning("%s failed (%s); falling back", model.name, error.message)

    async def _whole(self, call: Whole[T]) -> T:
        serving = _Serving(self.timeouts)
        chain = self._chain
        try:
            for model in chain:
                try:
                    return await model._attempt_whole(call, serving, model._screens(chain))
                except RelayError as error:
                    self._fall_back(chain, model, error)
        finally:
            serving.watchdog.close()
        raise AssertionError("unreachable: the last model returns or raises")

    def _screens(self, chain: list[ServedModel]) -> bool:
        """Whether this model's answers are checked for the content filter: only when a
        fallback could give another answer."""
        return self.fallback_on_content_filter and self is not chain[-1]

    async def _stream(self, call: Streamed) -> ChunkStream:
        serving = _Serving(self.timeouts)
        chain = self._chain
        try:
            for model in chain:
                try:
                    deployment, source, first = await model._open_stream(
                        call, serving, model._screens(chain)
                    )
                    break
                except RelayError as error:
                    self._fall_back(chain, model, error)
            try:
                yield first
                # From here on nothing is retried: the client has the start of this answer.
                while True:
                    serving.arm(serving.timeouts.idle)
                    waiting = time.monotonic()
                    try:
                        batch = await anext(source, None)
                    except asyncio.CancelledError:
                        if not serving.watchdog.fired():
                            raise
                        raise self._timed_out("stream stalled") from None
                    serving.watchdog.disarm()
                    # The rest of the stream is the model's time too, not the gateway's.
                    serving.trace.waited(time.monotonic() - waiting)
                    if batch is None:
                        break
                    yield batch
            except RelayError as error:
                self._failed(deployment, error)
                raise
            finally:
                await source.aclose()
                deployment.release()
        finally:
            serving.watchdog.close()

    # -- attempts on this model's deployments --------------------------------------------------

    async def _attempt_whole(
        self,
        call: Whole[T],
        serving: _Serving,
        screen: bool,
    ) -> T:
        watchdog = serving.watchdog
        failed: tuple[Deployment, RelayError] | None = None
        for attempt in range(1, self.retry.attempts + 1):
            deployment = await self._next(attempt, failed, serving)
            started = time.monotonic()
            serving.arm(serving.timeouts.first_byte)
            try:
                reply = await call(deployment.provider)
            except RelayError as exc:
                error: RelayError = exc
            except asyncio.CancelledError:
                if not watchdog.fired():
                    raise
                error = self._timed_out("no reply in time")
            else:
                deployment.succeeded(time.monotonic() - started)
                if screen and filtered(reply):
                    raise ContentFiltered(self.name)
                return reply
            finally:
                watchdog.disarm()
                deployment.release()
                serving.trace.waited(time.monotonic() - started)
            self._failed(deployment, error)
            failed = (deployment, error)
        assert failed is not None
        raise failed[1]

    async def _open_stream(
        self,
        call: Streamed,
        serving: _Serving,
        screen: bool,
    ) -> tuple[Deployment, ChunkStream, list[JSONObject]]:
        """A stream from the first deployment to start one, with its first batch; failures
        before that batch are retried, since the client has not seen a byte. A deployment
        that starts a stream has answered, and counts as a success at once, so that a
        probe's long stream does not keep its deployment resting. A screened stream's
        first batch runs to its first words."""
        watchdog = serving.watchdog
        failed: tuple[Deployment, RelayError] | None = None
        for attempt in range(1, self.retry.attempts + 1):
            deployment = await self._next(attempt, failed, serving)
            source = call(deployment.provider)
            started = time.monotonic()
            serving.arm(serving.timeouts.first_byte)
            try:
                try:
                    first = await anext(source, None)
                    if screen and first is not None:
                        first = await screened(source, first, self.name)
                finally:
                    watchdog.disarm()
                    serving.trace.waited(time.monotonic() - started)
                if not first:
                    raise UpstreamMalformed(f"The upstream for '{self.name}' sent an empty stream.")
                deployment.succeeded(time.monotonic() - started)
                return deployment, source, first
            except RelayError as exc:
                error: RelayError = exc
            except asyncio.CancelledError:
                if not watchdog.fired():
                    await self._abandon(source, deployment)
                    raise
                error = self._timed_out("no first byte in time")
            except BaseException:
                await self._abandon(source, deployment)
                raise
            await self._abandon(source, deployment)
            self._failed(deployment, error)
            failed = (deployment, error)
        assert failed is not None
        raise failed[1]

    @staticmethod
    async def _abandon(source: ChunkStream, deployment: Deployment) -> None:
        await source.aclose()
        deployment.release()

    async def _next(
        self,
        attempt: int,
        failed: tuple[Deployment, RelayError] | None,
        serving: _Serving,
    ) -> Deployment:
        """The deployment for this attempt, with its slot taken, after the wait a retry owes."""
        deployment, wait = self._pick(attempt, failed, serving.deadline)
        if wait > 0:
            log.info("%s: attempt %d on %s in %.3f s", self.name, attempt, deployment.id, wait)
            await asyncio.sleep(wait)
        serving.trace.attempted(deployment.id)
        if not deployment.try_acquire():
            queued = time.monotonic()
            await deployment.queue_for_slot()
            serving.trace.queued += time.monotonic() - queued
        return deployment

    def _pick(
        self, attempt: int, failed: tuple[Deployment, RelayError] | None, deadline: float
    ) -> tuple[Deployment, float]:
        """The deployment for this attempt, and how long to wait before it.

        A retry waits out the backoff, or the delay the upstream asked for when it goes
        back to the same deployment, and moves to another deployment when one is
        available. A wait that would pass the deadline is not begun: the last error
        stands. When every deployment is cooling down, the answer is a 503 (a 429 when
        they were rate limited) with a Retry-After for the soonest recovery.
        """
        now = time.monotonic()
        previous, error = failed if failed is not None else (None, None)
        if error is not None and not _retryable(error):
            raise error
        deployment = choose(self.deployments, self.strategy, now, previous)
        if deployment is None:
            raise self._resting(now)
        if error is None:
            return deployment, 0.0
        wait = self.retry.backoff(attempt - 1)
        if deployment is previous:
            wait = max(wait, asked_delay(error.headers) or 0.0)
        if now + wait >= deadline:
            raise error
        return deployment, wait

    def _resting(self, now: float) -> AllResting:
        soonest = min(d.resting_until for d in self.deployments)
        limited = all(d.rate_limited for d in self.deployments)
        return AllResting(
            f"Every deployment of '{self.name}' is cooling down after "
            + ("rate limits." if limited else "failures."),
            status=429 if limited else 503,
            error_type="rate_limit_error" if limited else "server_error",
            code="deployments_cooling_down",
            headers={"retry-after": str(max(1, math.ceil(soonest - now)))},
        )

    def _failed(self, deployment: Deployment, error: RelayError) -> None:
        log.warning(
            "%s: %s failed with %d: %s", self.name, deployment.id, error.status_code, error.message
        )
        if _retryable(error):
            rate_limited = error.status_code == 429
            deployment.failed(time.monotonic(), rate_limited, asked_delay(error.headers))

    def _timed_out(self, what: str) -> UpstreamTimeout:
        return UpstreamTimeout(f"The upstream for '{self.name}' timed out: {what}.")


class _Serving:
    """One request on its way through a chain of models: its trace, its timeouts as its
    client lowered them, its deadline, and the watchdog that times its waits."""

    __slots__ = ("deadline", "timeouts", "trace", "watchdog")

    def __init__(self, timeouts: Timeouts) -> None:
        self.trace = current_trace()
        self.timeouts = timeouts.lowered(self.trace.asked_timeouts)
        self.deadline = time.monotonic() + self.timeouts.total
        self.watchdog = Watchdog()

    def arm(self, seconds: float) -> None:
        """Time the wait that starts now: ``seconds`` at most, never past the deadline."""
        self.watchdog.arm(min(seconds, self.deadline - time.monotonic()))


def _retryable(error: RelayError) -> bool:
    return error.status_code in RETRYABLE or error.status_code >= 500
