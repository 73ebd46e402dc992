"""The jobs of one gateway process: submitting, looking up, cancelling and watching them,
and the workers that run them.

Watchers and idle workers are woken at once by changes made in this process, and
look at the store every ``POLL`` seconds for changes made by other processes
sharing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from .. import structured
from ..errors import InvalidRequest, NotFound
from ..gateway import Gateway
from ..schemas import ChatCompletionRequest, JSONObject
from .job import Job, new_id
from .settings import JobsSpec
from .store import JobStore, open_store
from .worker import Worker

log = logging.getLogger(__name__)

POLL = 0.5  # seconds
PURGE_EVERY = 600  # seconds


class JobNotFound(NotFound):
    default_code = "job_not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"No job with id '{job_id}'.", param="id")


class JobService:
    def __init__(self, spec: JobsSpec, data_dir: str, gateway: Gateway) -> None:
        self.spec = spec
        self.gateway = gateway
        self.store: JobStore = open_store(spec.store_url(data_dir))
        self._changes: dict[str, asyncio.Event] = {}
        self._work = asyncio.Event()
        self.workers = [
            Worker(
                self.store,
                gateway,
                lease=spec.lease_seconds,
                heartbeat=spec.lease_seconds / 3,
                max_attempts=spec.max_attempts,
                changed=self._changed,
            )
            for _ in range(spec.workers)
        ]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.store.open()
        self._tasks = [asyncio.create_task(self._work_loop(w)) for w in self.workers]
        self._tasks.append(asyncio.create_task(self._purge_loop()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()

    # -- what the API asks ---------------------------------------------------------------------

    async def submit(
        self,
        request: ChatCompletionRequest,
        metadata: JSONObject,
        idempotency_key: str | None,
    ) -> tuple[Job, bool]:
        """The job for ``request``: a new one, or the one it repeats (then True)."""
        if request.stream:
            raise InvalidRequest("A job cannot be streamed; leave out 'stream'.", param="stream")
        structured.target(request)  # a bad schema is refused now, not when the job runs
        model = self.gateway.resolve(request.model).name
        body = request.model_dump(mode="json", exclude_unset=True, by_alias=True)
        body["model"] = model
        job = Job(
            id=new_id(),
            model=model,
            request=body,
            metadata=metadata,
            idempotency_key=idempotency_key,
            dedup_key=_dedup_key(body) if _deterministic(request) else None,
        )
        stored = await self.store.submit(job)
        if stored.id == job.id:
            self._work.set()
            return job, False
        if idempotency_key is not None and stored.request != body:
            raise InvalidRequest(
                "This Idempotency-Key was used with a different request.",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            )
        return stored, True

    async def get(self, job_id: str) -> Job:
        job = await self.store.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def recent(self, status: str | None, limit: int, after: str | None) -> list[Job]:
        return await self.store.recent(status, limit, after)

    async def cancel(self, job_id: str) -> Job:
        job = await self.store.cancel(job_id)
        if job is None:
            raise JobNotFound(job_id)
        for worker in self.workers:
            worker.stop_job(job_id)  # at once when it runs here; elsewhere, at its next beat
        self._changed(job_id)
        return job

    async def watch(self, job_id: str) -> AsyncIterator[Job]:
        """The job each time it changes, until it has ended."""
        job = await self.get(job_id)
        seen: Any = None
        while True:
            now = time.time()
            view = (job.status, job.stage, job.estimate(now), job.attempts)
            if view != seen:
                seen = view
                yield job
            if job.done:
                return
            changed = self._changes.setdefault(job_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), POLL)
            job = await self.get(job_id)

    # -- inside --------------------------------------------------------------------------------

    def _changed(self, job_id: str) -> None:
        event = self._changes.pop(job_id, None)
        if event is not None:
            event.set()

    async def _work_loop(self, worker: Worker) -> None:
        while True:
            self._work.clear()  # before looking, so that a job submitted meanwhile wakes us
            try:
                if await worker.run_next():
                    continue
            except Exception:
                log.exception("a job worker failed; it goes on")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work.wait(), POLL)

    async def _purge_loop(self) -> None:
        while True:
            removed = await self.store.purge(time.time() - self.spec.ttl_hours * 3600)
            if removed:
                log.info(
                    "removed %d jobs that ended over %g hours ago", removed, self.spec.ttl_hours
                )
            await asyncio.sleep(PURGE_EVERY)


def _deterministic(request: ChatCompletionRequest) -> bool:
    return request.temperature == 0 or request.seed is not None


def _dedup_key(body: JSONObject) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
