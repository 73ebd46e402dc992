"""The gateway's one ASGI middleware: request ids, the request's trace, body limits, CORS,
error rendering, and handing the ended request to the log, the metrics and the ledger.

It is plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which would
add a task and a memory stream to every request on the hot path. For the same
reason the work that only some requests need is skipped for the others: CORS
handling for requests with no ``Origin`` (they are not cross-origin requests),
and counting body bytes for requests whose ``Content-Length`` is already
within the limit (the HTTP parser delivers no more than that).
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
from collections.abc import Callable, Sequence

import orjson
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import inbound_anthropic
from .errors import INTERNAL_MESSAGE, PayloadTooLarge, RelayError
from .logs import request_id_var
from .streaming import ClientGone
from .trace import Trace, trace_var

log = logging.getLogger(__name__)

ANTHROPIC_PATHS = "/v1/messages"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Unique per process by a random prefix, then a counter: cheaper than a random id per request,
# which costs a system call on the hot path.
_ID_PREFIX = f"req_{secrets.token_hex(6)}"
_request_ids = (f"{_ID_PREFIX}{n:012x}" for n in itertools.count())
Ended = Callable[[Trace, str, str], None]


class GatewayMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        cors_origins: Sequence[str],
        keep_bytes: int,
        ended: Ended,
    ) -> None:
        self.app = app
        self.cross_origin_app = CORSMiddleware(
            app,
            allow_origins=cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["x-request-id", "x-llmrelay-overhead-ms", "x-llmrelay-cache"],
        )
        self.max_body_bytes = max_body_bytes
        self.keep_bytes = keep_bytes
        self.ended = ended

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _CLIENT_ID.match(given) else next(_request_ids)
        token = request_id_var.set(request_id)
        trace = Trace(request_id, self.keep_bytes)
        if b"traceparent" in headers:
            trace.parent = headers[b"traceparent"].decode("latin-1")
        trace_token = trace_var.set(trace)
        status = 0
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    id_header,
                    *trace.response_headers(),
                ]
            await send(message)

        try:
            trace.read_timeouts(headers)
            length = self._check(headers)
            app = self.app if b"origin" not in headers else self.cross_origin_app
            if length is None:
                receive = self._limited(receive)
            await app(scope, receive, send_with_id)
        except ClientGone:
            status = 499
            log.info("client disconnected; request cancelled")
        except Exception as exc:
            if status:  # the reply had started; all that is left is to record it
                log.error("failed after the response started", exc_info=exc)
            else:
                error = _as_relay_error(exc)
                trace.error_type = error.to_dict()["error"]["type"]  # as the client sees it
                await _send_error(send_with_id, error, scope["path"])
        finally:
            trace.status = status
            trace.finish()
            self.ended(trace, scope["method"], scope["path"])
            trace_var.reset(trace_token)
            request_id_var.reset(token)

    def _check(self, headers: dict[bytes, bytes]) -> int | None:
        """Refuse a body over the limit; return its declared length, if it has one."""
        declared = headers.get(b"content-length")
        length = int(declared) if declared is not None and declared.isdigit() else None
        if length is not None and length > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        return length

    def _limited(self, receive: Receive) -> Receive:
        limit = self.max_body_bytes
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _too_large(limit)
            return message

        return limited


def _as_relay_error(exc: Exception) -> RelayError:
    if isinstance(exc, RelayError):
        if exc.status_code >= 500:
            log.warning("%s: %s", type(exc).__name__, exc.message)
        return exc
    # The trace goes to the log; the client gets a general message and the request id.
    log.error("unhandled error", exc_info=exc)
    return RelayError(INTERNAL_MESSAGE)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than the gateway's limit of {limit} bytes.")


async def _send_error(send: Send, exc: RelayError, path: str) -> None:
    # Clients of the Anthropic surface parse Anthropic's error shape; everyone else, OpenAI's.
    if path.startswith(ANTHROPIC_PATHS):
        body = orjson.dumps(inbound_anthropic.error_body(exc))
    else:
        body = exc.to_json()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in exc.headers.items()),
    ]
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
