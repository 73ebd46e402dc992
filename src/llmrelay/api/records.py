"""What the gateway recorded: usage and cost (``/v1/usage``), each request as the inspector
shows it (``/v1/requests``), and the Prometheus metrics (``/metrics``).

With the master key, or on a gateway without keys, these cover everyone; with a
virtual key, only that key's requests.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from ..accounting.series import By
from ..errors import InvalidRequest
from ..gateway import Gateway
from ..metrics import CONTENT_TYPE
from ..trace import current_trace
from .deps import json_response, whole_number
from .routing import QueryParam, endpoint

TAG = "Usage"
MAX_LIMIT = 200
DAY = 86400
MIN_BUCKET = 60
MAX_POINTS = 2000
MAX_WAIT_MS = 10_000


def _own_key() -> str | None:
    """The key whose records a request may see: its own, or everyone's (None)."""
    key = current_trace().key
    return key.id if key is not None else None


@endpoint(
    "GET",
    "/v1/usage",
    TAG,
    query=[
        QueryParam("start", "The first day, YYYY-MM-DD (UTC); 30 days ago by default."),
        QueryParam("end", "The last day, YYYY-MM-DD (UTC); today by default."),
    ],
)
async def usage(request: Request, gateway: Gateway) -> Response:
    """Requests, tokens and cost per key, model and day."""
    query = request.query_params
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    end = _day(query.get("end") or today, "end") + DAY
    start = _day(query["start"], "start") if "start" in query else end - 30 * DAY
    if start >= end:
        raise InvalidRequest("'start' must not be after 'end'.", param="start")
    rows = await gateway.ledger.usage(_own_key(), start, end)
    totals = {
        "requests": sum(r["requests"] for r in rows),
        "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
        "completion_tokens": sum(r["completion_tokens"] for r in rows),
        "cost_usd": round(sum(r["cost_usd"] for r in rows), 8),
        "saved_usd": round(sum(r["saved_usd"] for r in rows), 8),
    }
    pricing = {"as_of": gateway.pricing.as_of, "source": gateway.pricing.source}
    return json_response({"object": "usage", "data": rows, "totals": totals, "pricing": pricing})


@endpoint(
    "GET",
    "/v1/usage/series",
    TAG,
    query=[
        QueryParam("start", "The first moment, Unix seconds; 24 hours before 'end' by default."),
        QueryParam("end", "The moment after the last, Unix seconds; now by default."),
        QueryParam("bucket", f"Seconds per point, {MIN_BUCKET} to {DAY}; 3600 by default."),
        QueryParam("by", "One series per 'model' (the default) or per 'key'."),
    ],
)
async def usage_series(request: Request, gateway: Gateway) -> Response:
    """Requests, errors, tokens, cost and latency percentiles over time, per model or key."""
    query = request.query_params
    end = _float(query["end"], "end") if "end" in query else time.time()
    start = _float(query["start"], "start") if "start" in query else end - DAY
    if start >= end:
        raise InvalidRequest("'start' must be before 'end'.", param="start")
    bucket = whole_number(query.get("bucket", "3600"), "bucket", MIN_BUCKET, DAY)
    if query.get("by", "model") not in ("model", "key"):
        raise InvalidRequest("'by' must be 'model' or 'key'.", param="by")
    by: By = "key" if query.get("by") == "key" else "model"
    if (end - start) / bucket > MAX_POINTS:
        raise InvalidRequest(
            f"The range holds more than {MAX_POINTS} buckets; use a larger 'bucket'.",
            param="bucket",
        )
    rows, truncated = await gateway.ledger.series(_own_key(), start, end, bucket, by)
    return json_response(
        {"object": "usage.series", "bucket": bucket, "by": by, "truncated": truncated, "data": rows}
    )


@endpoint(
    "GET",
    "/v1/requests",
    TAG,
    query=[
        QueryParam("limit", f"At most this many, 1 to {MAX_LIMIT}; 20 by default."),
        QueryParam("before", "Only requests made before this time (Unix seconds)."),
    ],
)
async def list_requests(request: Request, gateway: Gateway) -> Response:
    """Recorded requests, newest first."""
    query = request.query_params
    limit = whole_number(query.get("limit", "20"), "limit", 1, MAX_LIMIT)
    before = _float(query["before"], "before") if "before" in query else None
    rows = await gateway.ledger.recent(_own_key(), limit, before)
    return json_response({"object": "list", "data": rows})


@endpoint(
    "GET",
    "/v1/requests/{request_id}",
    TAG,
    query=[
        QueryParam(
            "wait_ms",
            f"Up to {MAX_WAIT_MS} ms to wait for the record of a request still being served"
            " (a request is recorded just after its reply ends); 0 by default.",
        )
    ],
)
async def get_request(request: Request, gateway: Gateway) -> Response:
    """What one request took, as the inspector shows it: what the client sent, what the
    gateway added, what went upstream and came back, tokens, cost and timings."""
    wait = whole_number(request.query_params.get("wait_ms", "0"), "wait_ms", 0, MAX_WAIT_MS)
    found = await gateway.ledger.detail(request.path_params["request_id"], _own_key(), wait / 1000)
    return json_response(found)


@endpoint("GET", "/metrics", TAG, access="operator", documented=False)
async def metrics(request: Request, gateway: Gateway) -> Response:
    """Prometheus metrics."""
    waiting = gateway.jobs.store.waiting if gateway.jobs is not None else None
    body = await gateway.metrics.render(waiting)
    return Response(body, media_type=CONTENT_TYPE)


def _day(text: str, name: str) -> float:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise InvalidRequest(f"'{name}' must be a day, YYYY-MM-DD.", param=name) from None


def _float(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be a number.", param=name) from None


ENDPOINTS = [usage, usage_series, list_requests, get_request, metrics]
