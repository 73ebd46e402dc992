"""A request's record: the columns written for every request, and the inspector's view of
them, with what the client sent, what the gateway added, and what went upstream and came
back when the bodies were kept.

A record is a tuple of a request's trace's values, cheap to build for every
request. The bodies are built only with ``log_content``, on the database's
thread, and redacted there: the upstream's credential headers, and every
provider key wherever it appears. Bodies are cut at the trace's size limit.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from ..errors import redact
from ..trace import Trace, UpstreamCall, Usage

# Headers that carry credentials, whatever the provider.
SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization"}
)
REDACTED = "[redacted]"
TIMINGS = ("queue", "connect", "first_byte", "first_token", "upstream", "total")
COLUMNS = (
    "id", "created_at", "day", "key_id", "model", "deployment", "method", "path", "status",
    "error_type", "attempts", "prompt_tokens", "completion_tokens", "cached_tokens",
    "counted_by", "cost", "cache", "saved", *(f"{name}_ms" for name in TIMINGS), "content",
)  # fmt: skip
INTO = f"requests ({', '.join(COLUMNS)})"
REPEATED = "ON CONFLICT (id) DO NOTHING"  # a record written twice, after a failed write
SELECT = f"SELECT {', '.join(COLUMNS)} FROM requests"


def row(trace: Trace, method: str, path: str) -> tuple[Any, ...]:
    """A request's values, taken as it ends: plain values only, cheap to take and to keep
    until ``written`` makes them INSERT's values, off the hot path."""
    usage = trace.usage
    return (
        trace.request_id,
        trace.created,
        trace.key.id if trace.key is not None else None,
        trace.model,
        trace.deployment,
        method,
        path,
        trace.status,
        trace.error_type,
        trace.attempts,
        usage.prompt_tokens if usage else 0,
        usage.completion_tokens if usage else 0,
        usage.cached_tokens if usage else 0,
        usage.counted_by if usage else None,
        trace.cost,
        trace.cache,
        trace.saved,
        trace.queued,
        trace.connect,
        trace.first_byte,
        trace.first_token,
        trace.upstream_seconds,
        trace.duration,
    )


def written(values: tuple[Any, ...], trace: Trace | None) -> tuple[Any, ...]:
    """INSERT's values for a ``row``, with the bodies of ``trace`` when they are kept."""
    request_id, created, *middle, queued, connect, first_byte, first_token, upstream, total = values
    return (
        request_id,
        created,
        _day(created),
        *middle,
        *(_ms(s) for s in (queued, connect, first_byte, first_token, upstream, total)),
        None if trace is None else orjson.dumps(_content(trace)),
    )


@functools.lru_cache(maxsize=4)
def _day_starting(day: int) -> str:
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d")


def _day(stamp: float) -> str:
    """The UTC day of a Unix time, formatted once per day."""
    return _day_starting(int(stamp // 86400))


def detail(values: Any) -> dict[str, Any]:
    """The inspector's view of a row selected with SELECT."""
    found = dict(zip(COLUMNS, values, strict=True))
    timings = {name: found[f"{name}_ms"] for name in TIMINGS}
    if timings["total"] is not None:
        timings["overhead"] = round(max(0.0, timings["total"] - (timings["upstream"] or 0)), 3)
    counted_by = found["counted_by"]
    usage = Usage(
        found["prompt_tokens"], found["completion_tokens"], found["cached_tokens"], counted_by
    )
    record: dict[str, Any] = {
        "id": found["id"],
        "object": "request.detail",
        **{name: found[name] for name in ("created_at", "method", "path", "key_id", "model")},
        **{name: found[name] for name in ("deployment", "status", "error_type", "attempts")},
        "cache": found["cache"],
        "usage": None
        if counted_by is None
        else {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "total_tokens": usage.total_tokens,
            "counted_by": usage.counted_by,
            "estimated": usage.estimated,
        },
        "cost_usd": found["cost"],
        "saved_usd": found["saved"],
        "timings_ms": timings,
        "content_kept": found["content"] is not None,
    }
    if found["content"] is not None:
        record.update(orjson.loads(found["content"]))
    return record


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _content(trace: Trace) -> dict[str, Any]:
    limit = trace.keep_bytes
    secrets = [s for call in trace.calls for s in call.secrets]
    return {
        "client_request": _body(trace.client_body or b"", limit, secrets),
        "injected": trace.injected,
        "upstream": [_call(call, limit) for call in trace.calls],
    }


def _call(call: UpstreamCall, limit: int) -> dict[str, Any]:
    return {
        "deployment": call.deployment,
        "url": redact(call.url, call.secrets),
        "headers": _headers(call.headers, call.secrets),
        "body": _body(call.body, limit, call.secrets),
        "status": call.status,
        "response": _body(bytes(call.response), limit, call.secrets),
        "response_truncated": len(call.response) >= limit,
    }


def _headers(headers: Mapping[str, str], secrets: list[str]) -> dict[str, str]:
    return {
        name: REDACTED if name.lower() in SECRET_HEADERS else redact(value, secrets)
        for name, value in headers.items()
    }


def _body(data: bytes, limit: int, secrets: list[str]) -> Any:
    """JSON as JSON when it is whole and within the limit; else the text, cut."""
    if len(data) <= limit:
        text = redact(data.decode("utf-8", "replace"), secrets)
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
    return redact(data[:limit].decode("utf-8", "replace"), secrets)
