"""The error tree, and the one place that renders an error as OpenAI's wire shape.

Every failure a client can see is one of these, raised where it happens and
rendered once, as ``{"error": {"message", "type", "param", "code"}}``::

    RelayError                       500 server_error
    ├── InvalidRequest               400 invalid_request_error
    │   └── UnsupportedParameter     400 (code: unsupported_parameter)
    ├── AuthenticationFailed         401 (code: invalid_api_key)
    ├── PermissionDenied             403
    ├── ModelNotFound                404 (code: model_not_found)
    ├── NotFound                     404
    ├── MethodNotAllowed             405
    ├── PayloadTooLarge              413 (code: request_too_large)
    ├── RateLimited                  429 (code: rate_limit_exceeded)
    │   └── QuotaExceeded            429 insufficient_quota
    └── UpstreamError                the upstream's own 4xx/429/5xx, message and type kept
                                     (else OpenAI's type for the status)
        ├── UpstreamUnreachable      502 (code: upstream_unreachable)
        ├── UpstreamMalformed        502 (code: upstream_malformed)
        └── UpstreamTimeout          504 (code: upstream_timeout)

Foreign exceptions (aiohttp, pydantic, llama.cpp) are translated into this tree
at the boundary where they occur; anything else reaching the renderer is a bug
and becomes a generic 500 whose details go only to the log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import orjson

from .schemas.common import json_object


class RelayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    @property
    def status_code(self) -> int:
        return self.status

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


class InvalidRequest(RelayError):
    status = 400
    type = "invalid_request_error"


class UnsupportedParameter(InvalidRequest):
    default_code = "unsupported_parameter"

    def __init__(self, param: str, where: str) -> None:
        super().__init__(f"'{param}' is not supported by {where}.", param=param)


class AuthenticationFailed(RelayError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDenied(RelayError):
    status = 403
    type = "permission_error"


class NotFound(RelayError):
    status = 404
    type = "invalid_request_error"


class ModelNotFound(NotFound):
    default_code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model '{model}' does not exist or you do not have access to it.",
            param="model",
        )


class MethodNotAllowed(RelayError):
    status = 405
    type = "invalid_request_error"


class PayloadTooLarge(RelayError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(RelayError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class QuotaExceeded(RateLimited):
    """A key's budget is spent; OpenAI gives this type and code when a quota is."""

    type = "insufficient_quota"
    default_code = "insufficient_quota"


class UpstreamError(RelayError):
    """A failure reported by, or on the way to, an upstream provider.

    The status is the upstream's own when it answered with an error, so that a
    429 stays a 429 and the SDK raises the matching exception class.
    """

    type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
        self._status = status if status is not None else type(self).status
        self._type = error_type or type(self).type

    @property
    def status_code(self) -> int:
        return self._status

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["error"]["type"] = self._type
        return body


class UpstreamUnreachable(UpstreamError):
    status = 502
    default_code = "upstream_unreachable"


class UpstreamMalformed(UpstreamError):
    status = 502
    default_code = "upstream_malformed"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout"
    default_code = "upstream_timeout"


INTERNAL_MESSAGE = "The gateway hit an internal error. It has been logged with this request's id."


_KEY_PATTERN = re.compile(r"\b(sk|key|rk)-[A-Za-z0-9_\-*.]{6,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove anything that looks like a credential from text bound for a client or a log."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub(r"\1-[redacted]", text)


def upstream_error(
    status: int, body: bytes, headers: Mapping[str, str], secrets: Iterable[str] = ()
) -> UpstreamError:
    """Translate an OpenAI-compatible upstream's error reply, keeping its status and message.

    Accepts OpenAI's ``{"error": {...}}``, vLLM's ``{"error": "..."}`` and older
    ``{"object": "error", "message": ...}``, and plain text. An upstream 401/403
    means the gateway's own upstream credentials are wrong, not the client's, so
    it becomes a 502 rather than telling the client its key was bad.
    """
    data = json_object(body)
    detail: Any = data.get("error", data) if data is not None else None
    if isinstance(detail, dict):
        message = str(detail.get("message") or detail.get("detail") or "")
        error_type = detail.get("type")
        code = detail.get("code")
        param = detail.get("param")
    else:
        message = str(detail) if detail else body.decode("utf-8", "replace")[:2000]
        error_type = code = param = None
    message = redact(message or f"The upstream answered HTTP {status}.", secrets)
    forwarded = {k: v for k, v in headers.items() if k.lower() in _FORWARDED_ERROR_HEADERS}
    if status in (401, 403):
        return UpstreamError(
            f"The upstream rejected the gateway's credentials: {message}",
            status=502,
            code="upstream_authentication_failed",
        )
    if not 400 <= status < 600:
        status = 502
    if not isinstance(error_type, str):
        # Clients branch on OpenAI's types, so an upstream that names none gets the one
        # OpenAI gives that status.
        error_type = (
            "rate_limit_error"
            if status == 429
            else "server_error"
            if status >= 500
            else "invalid_request_error"
        )
    return UpstreamError(
        message,
        status=status,
        error_type=error_type,
        code=code if isinstance(code, str) else None,
        param=param if isinstance(param, str) else None,
        headers=forwarded,
    )


_FORWARDED_ERROR_HEADERS = {
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
}
