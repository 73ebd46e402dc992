"""A worker: takes one job at a time from the store, asks the model, holds the job's lease
with heartbeats while it works, and records how the job ended."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

from .. import structured
from ..accounting.meter import MeteredModel
from ..bus import Kind
from ..chunks import ChatAccumulator
from ..errors import PermissionDenied, RelayError
from ..gateway import Gateway
from ..schemas import ChatCompletionRequest, JSONObject
from ..schemas.common import StreamOptions
from ..trace import trace_var
from .job import CEILING, Job
from .store import JobStore

log = logging.getLogger(__name__)

# Tokens expected of a request that sets no max_tokens, for its progress.
DEFAULT_BUDGET = 512


class Worker:
    def __init__(
        self,
        store: JobStore,
        gateway: Gateway,
        *,
        lease: float,
        heartbeat: float,
        max_attempts: int,
        tell: Callable[[Kind, str], None],
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.lease = lease
        self.heartbeat = heartbeat
        self.max_attempts = max_attempts
        self.tell = tell  # tells every process what became of a job
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.current: tuple[Job, asyncio.Task[None]] | None = None
        # Set when the running job was cancelled or taken over, rather than this worker stopped.
        self._lost = False

    async def run_next(self) -> bool:
        """Run the next job, if one is waiting; whether there was one."""
        owner = f"{self.name}:{secrets.token_hex(4)}"  # one per claim, so a stale one is fenced
        claiming = asyncio.ensure_future(self.store.claim(owner, self.lease))
        try:
            job = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            # The claim's SQL runs on to the end regardless; give back what it took.
            if (claimed := await claiming) is not None:
                await self._give_back(claimed, owner)
            raise
        if job is None:
            return False
        self.tell("changed", job.id)
        self._lost = False
        task = asyncio.create_task(self._run(job, owner))
        self.current = (job, task)
        try:
            await task  # cancelling the worker cancels the job's task too
        except asyncio.CancelledError:
            worker = asyncio.current_task()
            if not self._lost or (worker is not None and worker.cancelling()):
                raise
            # Only the job was stopped (a cancel, or a lost lease): this worker goes on.
        finally:
            self.current = None
        return True

    def stop_job(self, job_id: str) -> bool:
        """Stop the job if this worker is running it, as a cancel asks."""
        if self.current is None or self.current[0].id != job_id:
            return False
        self._abandon(self.current[1])
        return True

    def _abandon(self, task: asyncio.Task[None]) -> None:
        self._lost = True
        task.cancel()

    async def _run(self, job: Job, owner: str) -> None:
        if job.runs > self.max_attempts:
            job.status = "failed"
            job.error = _error(
                f"The job was taken by a worker {job.runs - 1} times without finishing.",
                "job_lost",
            )
            await self._finish(job, owner)
            return
        if job.runs > 1:
            # What the lost worker had not saved is gone; the job's record says it was lost.
            job.history.append({"run": job.runs - 1, "outcome": "worker_lost"})
        now = time.time()
        job.started_at = job.started_at or now
        job.stage = "waiting_for_model"
        request = ChatCompletionRequest.model_validate(job.request)
        budget = request.token_limit or DEFAULT_BUDGET
        runner = asyncio.current_task()
        assert runner is not None
        beats: asyncio.Task[None] | None = None
        # The run is recorded as a request of the job's key, whose system prompt it gets.
        trace = self.gateway.trace(job.request_id)
        trace_var.set(trace)  # in this run's own task
        try:
            if job.key_id is not None:
                trace.key = self.gateway.keys.live(job.key_id)
                if trace.key is None:
                    raise PermissionDenied(
                        "The key that submitted this job was revoked.", code="key_revoked"
                    )
            speed = await self.store.speed(job.model)
            if speed is not None:
                job.expected_seconds = speed * budget
            if not await self.store.save(job, owner, self.lease):
                return
            beats = asyncio.create_task(self._beat(job, owner, runner))
            model = self.gateway.resolve(job.model)
            reply, output = await structured.answer(
                request,
                lambda asked: self._ask(job, model, asked, budget),
                self.max_attempts,
                job.history.append,
            )
        except RelayError as exc:
            job.status = "failed"
            job.error = exc.to_dict()["error"]
        except asyncio.CancelledError:
            if not self._lost:
                job.stage = "queued"
                await self._give_back(job, owner)  # the worker stops: the job goes back now
                raise
            log.info("job %s stopped: cancelled, or its lease was lost", job.id)
            return
        except Exception:
            log.exception("job %s failed unexpectedly", job.id)
            job.status = "failed"
            job.error = _error("The job failed inside the gateway; see its log.", "internal_error")
        else:
            job.status = "completed"
            job.output = output
            job.result = reply
            job.progress = 100
        finally:
            if beats is not None:
                beats.cancel()
            if trace.model is not None:
                trace.status = 200 if job.status == "completed" else 500
                self.gateway.ended(trace, "JOB", f"/v1/jobs/{job.id}")
        await self._finish(job, owner)
        if job.status == "completed" and job.started_at is not None:
            await self.store.record_speed(job.model, (time.time() - job.started_at) / budget)

    async def _ask(
        self, job: Job, model: MeteredModel, request: ChatCompletionRequest, budget: int
    ) -> JSONObject:
        """One answer from the model, streamed so that progress follows the tokens."""
        job.attempts += 1
        job.stage = "waiting_for_model"
        folded = ChatAccumulator()
        tokens = 0
        streamed = {"stream": True, "stream_options": StreamOptions(include_usage=True)}
        stream = model.chat_stream(request.model_copy(update=streamed))
        try:
            async for batch in stream:
                job.stage = "generating"
                for chunk in batch:
                    folded.add(chunk)
                    tokens += sum(
                        1
                        for c in chunk.get("choices") or ()
                        if (c.get("delta") or {}).get("content")
                    )
                job.progress = max(job.progress, min(CEILING, CEILING * tokens // budget))
        finally:
            await stream.aclose()
        job.stage = "validating"
        reply = folded.result()
        job.usage = _added(job.usage, reply.get("usage"))
        return reply

    async def _beat(self, job: Job, owner: str, runner: asyncio.Task[Any]) -> None:
        """Renew the lease and save progress until cancelled; stop the run when the job
        was cancelled or taken over."""
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                held = await self.store.save(job, owner, self.lease)
            except Exception:
                # The lease outlasts a few beats; the next may get through.
                log.warning("could not renew the lease of job %s", job.id, exc_info=True)
                continue
            if not held:
                self._abandon(runner)
                return
            self.tell("changed", job.id)

    async def _give_back(self, job: Job, owner: str) -> None:
        """Return a job to the queue, and wake a worker anywhere to take it."""
        await self.store.release(job, owner)
        self.tell("submitted", job.id)

    async def _finish(self, job: Job, owner: str) -> None:
        job.stage = "done"
        job.finished_at = time.time()
        if await self.store.finish(job, owner):
            self.tell("ended", job.id)


def _error(message: str, code: str) -> JSONObject:
    return {"message": message, "type": "server_error", "param": None, "code": code}


def _added(total: JSONObject | None, more: JSONObject | None) -> JSONObject | None:
    """Usage over several answers: the counts summed."""
    if not more:
        return total
    if not total:
        return dict(more)
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {k: int(total.get(k) or 0) + int(more.get(k) or 0) for k in keys}
