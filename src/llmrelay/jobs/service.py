"""The jobs of one process: submitting, looking up, cancelling and watching them, the
workers that run them, and the sender of their webhooks.

What happens to a job is told over the bus (see ``bus``): watchers, idle workers
and the webhook sender wake on its messages, from this process or any other
sharing the store, and look at the store every ``bus.poll`` seconds for
anything no message told.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import orjson

from .. import structured
from ..bus import Bus, Kind
from ..database import Database
from ..errors import InvalidRequest, NotFound
from ..gateway import Gateway
from ..periodic import every
from ..schemas import ChatCompletionRequest, JSONObject
from ..trace import current_trace
from .job import Job, is_id, new_id
from .settings import WEBHOOK_SECRET_ENV, JobsSpec
from .store import JobStore
from .webhooks import Webhooks
from .worker import Worker

log = logging.getLogger(__name__)

PURGE_EVERY = 600  # seconds
SENDERS = 4  # webhooks sent at once by each process, so that one slow receiver holds up no other
MAX_IDEMPOTENCY_KEY = 255


class JobNotFound(NotFound):
    default_code = "job_not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"No job with id '{job_id}'.", param="id")


class JobService:
    def __init__(
        self,
        spec: JobsSpec,
        gateway: Gateway,
        database: Database,
        bus: Bus,
        workers: int | None = None,
    ) -> None:
        self.spec = spec
        self.gateway = gateway
        self.store = JobStore(database)
        self.bus = bus
        self._watchers: dict[str, set[asyncio.Event]] = {}
        # The wake-up of each idle worker, and of each webhook sender.
        self._idle_workers: list[asyncio.Event] = []
        self._idle_senders: list[asyncio.Event] = []
        self.workers = [
            Worker(
                self.store,
                gateway,
                lease=spec.lease_seconds,
                heartbeat=spec.lease_seconds / 3,
                max_attempts=spec.max_attempts,
                tell=self.bus.publish,
            )
            for _ in range(spec.workers if workers is None else workers)
        ]
        secret = spec.webhook_secret
        self.webhooks: Webhooks | None = None
        if secret is not None:
            key = secret.get_secret_value().encode()
            self.webhooks = Webhooks(
                self.store,
                key,
                attempts=spec.webhook_attempts,
                allow_private=spec.webhook_allow_private,
            )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.bus.listen(self._heard)
        self._tasks = [
            asyncio.create_task(self._loop(worker.run_next, self._idle_workers))
            for worker in self.workers
        ]
        if self.workers:
            # Processes that run jobs send their webhooks and remove old ones.
            if self.webhooks is not None:
                deliver = self.webhooks.deliver_next
                self._tasks += [
                    asyncio.create_task(self._loop(deliver, self._idle_senders))
                    for _ in range(SENDERS)
                ]
            purging = every(PURGE_EVERY, self._purge, "removing old jobs", at_once=True)
            self._tasks.append(asyncio.create_task(purging))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.webhooks is not None:
            await self.webhooks.close()

    # -- what the API asks ---------------------------------------------------------------------

    async def submit(
        self,
        request: ChatCompletionRequest,
        metadata: JSONObject,
        idempotency_key: str | None,
        webhook_url: str | None = None,
    ) -> tuple[Job, bool]:
        """The job for ``request``: a new one, or the one it repeats (then True)."""
        if request.stream:
            raise InvalidRequest("A job cannot be streamed; leave out 'stream'.", param="stream")
        if idempotency_key is not None and not (
            0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY and idempotency_key.isprintable()
        ):
            raise InvalidRequest(
                f"An Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY} printable characters.",
                param="Idempotency-Key",
            )
        if webhook_url is not None:
            if self.webhooks is None:
                raise InvalidRequest(
                    "Webhooks are off: the gateway has no secret to sign them with "
                    f"(jobs.webhook_secret or ${WEBHOOK_SECRET_ENV}).",
                    param="webhook_url",
                    code="webhooks_not_configured",
                )
            self.webhooks.check(webhook_url)
        structured.target(request)  # a bad schema is refused now, not when the job runs
        model = self.gateway.resolve(request.model).name
        body = request.model_dump(mode="json", exclude_unset=True, by_alias=True)
        body["model"] = model
        owner = _owner()
        job = Job(
            id=new_id(),
            model=model,
            request=body,
            metadata=metadata,
            # Keys are apart: one key's idempotency key or request is no repeat of another's.
            idempotency_key=None if idempotency_key is None else f"{owner or ''}:{idempotency_key}",
            dedup_key=_dedup_key(body, webhook_url, owner) if _deterministic(request) else None,
            key_id=owner,
        )
        if webhook_url is not None:
            job.webhook = {"url": webhook_url, "attempts": 0, "last_error": None}
            job.webhook_state = "waiting"
        stored = await self.store.submit(job)
        if stored.id == job.id:
            self.bus.publish("submitted", job.id)
            return job, False
        if idempotency_key is not None and (stored.request, stored.webhook_url) != (
            body,
            webhook_url,
        ):
            raise InvalidRequest(
                "This Idempotency-Key was used with a different request.",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            )
        return stored, True

    async def get(self, job_id: str) -> Job:
        """The job, when the asking key may see it: its own, or any for the master key."""
        job = await self.store.get(job_id) if is_id(job_id) else None
        owner = _owner()
        if job is None or (owner is not None and job.key_id != owner):
            raise JobNotFound(job_id)
        return job

    async def recent(self, status: str | None, limit: int, after: str | None) -> list[Job]:
        if after is not None and not is_id(after):
            raise InvalidRequest(f"'after' must be a job id, not {after[:40]!r}.", param="after")
        return await self.store.recent(status, limit, after, _owner())

    async def cancel(self, job_id: str) -> Job:
        await self.get(job_id)  # another key's job is not found
        job = await self.store.cancel(job_id)
        if job is None:
            raise JobNotFound(job_id)
        self.bus.publish("cancelled", job_id)  # its worker, wherever it is, stops it
        return job

    async def watch(self, job_id: str) -> AsyncIterator[Job]:
        """The job each time it changes, until it has ended."""
        changed = asyncio.Event()
        self._watchers.setdefault(job_id, set()).add(changed)  # first, to miss no change
        try:
            job = await self.get(job_id)
            seen: Any = None
            while True:
                view = (job.status, job.stage, job.estimate(time.time()), job.attempts)
                if view != seen:
                    seen = view
                    yield job
                if job.done:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), self.bus.poll)
                changed.clear()  # before looking, so that a change meanwhile is not missed
                job = await self.get(job_id)
        finally:
            watchers = self._watchers[job_id]
            watchers.discard(changed)
            if not watchers:
                del self._watchers[job_id]

    # -- inside --------------------------------------------------------------------------------

    def _heard(self, kind: Kind, job_id: str) -> None:
        if kind == "key":
            return
        if kind == "submitted":
            _wake(self._idle_workers)
            return
        if kind == "cancelled":
            for worker in self.workers:
                worker.stop_job(job_id)
        if kind in ("ended", "cancelled"):
            _wake(self._idle_senders)
        _wake(self._watchers.get(job_id, ()))

    async def _loop(self, step: Callable[[], Awaitable[bool]], idle: list[asyncio.Event]) -> None:
        """Take one step after another while there is work, then wait, among ``idle``, to be
        woken."""
        wake = asyncio.Event()
        idle.append(wake)
        while True:
            wake.clear()  # before looking, so that work arriving meanwhile wakes us
            try:
                if await step():
                    continue
            except Exception:
                log.exception("a jobs loop failed; it goes on")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.bus.poll)

    async def _purge(self) -> None:
        hours = self.spec.ttl_hours
        removed = await self.store.purge(time.time() - hours * 3600)
        if removed:
            log.info("removed %d jobs that ended over %g hours ago", removed, hours)


def _wake(events: Iterable[asyncio.Event]) -> None:
    for event in events:
        event.set()


def _deterministic(request: ChatCompletionRequest) -> bool:
    return request.temperature == 0 or request.seed is not None


def _owner() -> str | None:
    """The virtual key of the request being served, if it came with one."""
    key = current_trace().key
    return key.id if key is not None else None


def _dedup_key(body: JSONObject, webhook_url: str | None, owner: str | None) -> str:
    """The same request repeats a job only for the same key, and when its result goes to
    the same webhook."""
    key = orjson.dumps([body, webhook_url, owner], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(key).hexdigest()
