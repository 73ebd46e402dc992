"""A request's inspector record: what the client sent, what the gateway added, what went
upstream and came back, the tokens and how they were counted, the cost, and the timings.

Built from a request's trace after it ended, on the database's thread. Secrets
are redacted here: the upstream's credential headers, and every provider key
wherever it appears. Bodies are cut at the trace's size limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import redact
from ..trace import Trace, UpstreamCall

# Headers that carry credentials, whatever the provider.
SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization"}
)
REDACTED = "[redacted]"


def detail(trace: Trace, method: str, path: str, log_content: bool) -> dict[str, Any]:
    usage = trace.usage
    record: dict[str, Any] = {
        "id": trace.request_id,
        "object": "request.detail",
        "created_at": trace.created,
        "method": method,
        "path": path,
        "key_id": trace.key.id if trace.key is not None else None,
        "model": trace.model,
        "deployment": trace.deployment,
        "status": trace.status,
        "error_type": trace.error_type,
        "attempts": trace.attempts,
        "cache": trace.cache,
        "usage": None
        if usage is None
        else {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "total_tokens": usage.total_tokens,
            "counted_by": usage.counted_by,
            "estimated": usage.estimated,
        },
        "cost_usd": trace.cost,
        "saved_usd": trace.saved,
        "timings_ms": _timings(trace),
        "content_kept": log_content,
    }
    if log_content:
        limit = trace.keep_bytes
        secrets = [s for call in trace.calls for s in call.secrets]
        record["client_request"] = _body(trace.client_body or b"", limit, secrets)
        record["injected"] = trace.injected
        record["upstream"] = [_call(call, limit) for call in trace.calls]
    return record


def _timings(trace: Trace) -> dict[str, float | None]:
    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000, 3)

    total = trace.total if trace.total is not None else trace.elapsed()
    return {
        "queue": ms(trace.queued),
        "connect": ms(trace.connect),
        "first_byte": ms(trace.first_byte),
        "first_token": ms(trace.first_token),
        "upstream": ms(trace.upstream_seconds),
        "overhead": ms(max(0.0, total - trace.upstream_seconds)),
        "total": ms(total),
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
