"""The jobs surface: submit a chat request, then poll it or be pushed its progress."""

from __future__ import annotations

import asyncio
import math
from typing import Any, get_args

import orjson
from pydantic import Field, HttpUrl
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from ..errors import InvalidRequest
from ..gateway import Gateway
from ..jobs.job import Status
from ..jobs.service import JobNotFound, JobService
from ..schemas import ChatCompletionRequest
from ..streaming import ChunkStream, EventStreamResponse, Framing
from .deps import json_response, parse_body, whole_number
from .routing import QueryParam, endpoint

TAG = "Jobs"
STATUSES = frozenset(get_args(Status))
MAX_LIMIT = 100


class JobRequest(ChatCompletionRequest):
    """A chat-completion request, run as a job."""

    metadata: dict[str, Any] | None = Field(default=None, description="Kept with the job.")
    webhook_url: HttpUrl | None = Field(
        default=None,
        description="Sent the ended job as a signed POST (see the webhook_secret setting).",
    )


def _jobs(gateway: Gateway) -> JobService:
    assert gateway.jobs is not None, "the jobs service starts with the gateway"
    return gateway.jobs


@endpoint("POST", "/v1/jobs", TAG, body=JobRequest, access="metered")
async def submit_job(request: Request, gateway: Gateway) -> Response:
    """Submit a chat-completion request as a job; 202 with the job, polled at its Location.

    A repeat of a deterministic request (temperature 0 or a seed), or of an
    Idempotency-Key, gets the existing job with 200 and `x-llmrelay-dedup: hit`.
    """
    body = await parse_body(request, JobRequest)
    chat = ChatCompletionRequest.model_validate(
        body.model_dump(exclude={"metadata", "webhook_url"}, exclude_unset=True, by_alias=True)
    )
    key = request.headers.get("idempotency-key")
    webhook = None if body.webhook_url is None else str(body.webhook_url)
    job, repeated = await _jobs(gateway).submit(chat, body.metadata or {}, key, webhook)
    view = job.public()
    retry = max(1, math.ceil((view["poll_after_ms"] or 1000) / 1000))
    headers = {"location": f"/v1/jobs/{job.id}", "retry-after": str(retry)}
    if repeated:
        headers["x-llmrelay-dedup"] = "hit"
    response = json_response(view, 200 if repeated else 202)
    response.headers.update(headers)
    return response


@endpoint("GET", "/v1/jobs/{job_id}", TAG)
async def get_job(request: Request, gateway: Gateway) -> Response:
    """The job, with its status, progress and, once completed, its result."""
    job = await _jobs(gateway).get(request.path_params["job_id"])
    return json_response(job.public())


@endpoint(
    "GET",
    "/v1/jobs",
    TAG,
    query=[
        QueryParam("status", "Only jobs with this status."),
        QueryParam("limit", f"At most this many, 1 to {MAX_LIMIT}; 20 by default."),
        QueryParam("after", "Only jobs older than this job id, for the next page."),
    ],
)
async def list_jobs(request: Request, gateway: Gateway) -> Response:
    """Jobs, newest first."""
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise InvalidRequest(
            f"'status' must be one of {', '.join(sorted(STATUSES))}.", param="status"
        )
    limit = whole_number(request.query_params.get("limit", "20"), "limit", 1, MAX_LIMIT)
    jobs = await _jobs(gateway).recent(status, limit + 1, request.query_params.get("after"))
    page = [job.public() for job in jobs[:limit]]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(jobs) > limit,
        }
    )


@endpoint("POST", "/v1/jobs/{job_id}/cancel", TAG)
async def cancel_job(request: Request, gateway: Gateway) -> Response:
    """Cancel the job, closing its upstream request if one is in flight."""
    job = await _jobs(gateway).cancel(request.path_params["job_id"])
    return json_response(job.public())


@endpoint("GET", "/v1/jobs/{job_id}/events", TAG, stream=True)
async def job_events(request: Request, gateway: Gateway) -> Response:
    """Server-sent events: the job object each time it changes, until it has ended."""
    updates = _updates(_jobs(gateway), request.path_params["job_id"])
    return EventStreamResponse(updates, Framing(closing=b""))


async def _updates(jobs: JobService, job_id: str) -> ChunkStream:
    async for job in jobs.watch(job_id):
        yield [job.public()]


async def job_socket(websocket: WebSocket, gateway: Gateway) -> None:
    """The job object each time it changes, pushed as a text message, until it has ended;
    then the socket closes normally. An unknown job closes it with 4404."""
    await websocket.accept()

    async def push() -> None:
        async for job in _jobs(gateway).watch(websocket.path_params["job_id"]):
            await websocket.send_text(orjson.dumps(job.public()).decode())

    async def listen() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    pushing, listening = asyncio.create_task(push()), asyncio.create_task(listen())
    try:
        await asyncio.wait({pushing, listening}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        listening.cancel()
        pushing.cancel()
    if listening.done():
        return  # the client left
    error = pushing.exception()
    if isinstance(error, JobNotFound):
        await websocket.close(4404, error.message)
    elif error is not None:
        raise error
    else:
        await websocket.close()


ENDPOINTS = [submit_job, list_jobs, get_job, cancel_job, job_events]
SOCKETS = [("/v1/jobs/{job_id}/ws", job_socket)]
