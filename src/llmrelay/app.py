"""The app factory: the ASGI app that routes to the endpoints, wrapped in the gateway's
middleware, with a lifespan that owns the upstream HTTP session and the models."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from . import __version__, logs
from .api import admin, anthropic, health, jobs, openai, playground, records, simple_chat, vllm
from .api.deps import json_response
from .api.routing import Endpoint, Router, endpoint, openapi_document, swagger_page
from .bus import open_bus
from .config import Config
from .database import open_database
from .errors import RelayError
from .gateway import Gateway
from .jobs.service import JobService
from .keys.access import presented_key
from .middleware import GatewayMiddleware
from .trace import Trace, current_trace
from .upstream import create_session

log = logging.getLogger(__name__)

TITLE = "llmrelay"
ENDPOINTS: list[Endpoint] = [
    *openai.ENDPOINTS,
    *jobs.ENDPOINTS,
    *anthropic.ENDPOINTS,
    *simple_chat.ENDPOINTS,
    *vllm.ENDPOINTS,
    *records.ENDPOINTS,
    *admin.ENDPOINTS,
    *health.ENDPOINTS,
    *playground.ENDPOINTS,
]
OPENAPI = openapi_document(ENDPOINTS, TITLE, __version__)


@endpoint("GET", "/openapi.json", "Docs", documented=False, access="public")
async def openapi_json(request: Request, gateway: Gateway) -> Response:
    return json_response(OPENAPI)


@endpoint("GET", "/docs", "Docs", documented=False, access="public")
async def docs(request: Request, gateway: Gateway) -> Response:
    return swagger_page(TITLE)


class App:
    """Routes each request to its endpoint with the gateway; runs the lifespan."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.router = Router([*ENDPOINTS, openapi_json, docs])
        self.sockets = [(compile_path(path)[0], handler) for path, handler in jobs.SOCKETS]
        self.gateway: Gateway | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.gateway is None:
            return
        if scope["type"] == "websocket":
            await self._socket(scope, receive, send, self.gateway)
            return
        if scope["type"] != "http":
            return
        endpoint, scope["path_params"] = self.router.match(scope["method"], scope["path"])
        if scope["method"] != "OPTIONS":
            presented = presented_key(scope["headers"])
            await self.gateway.access.check(endpoint.access, presented, current_trace())
        metrics = self.gateway.metrics
        metrics.in_flight += 1
        try:
            response = await endpoint.handler(Request(scope, receive), self.gateway)
            await response(scope, receive, send)
        finally:
            metrics.in_flight -= 1

    def ended(self, trace: Trace, method: str, path: str) -> None:
        """Log a request that ended, and record it when it reached a model."""
        if trace.model is not None and self.gateway is not None:
            self.gateway.ended(trace, method, path)
        else:
            logs.access(trace, method, path)

    async def _socket(self, scope: Scope, receive: Receive, send: Send, gateway: Gateway) -> None:
        # A WebSocket presents its key as a header, or, since browsers cannot set headers on
        # one, as the ``api_key`` query parameter. Refused before the handshake completes,
        # the client sees a 403.
        presented = presented_key(scope["headers"])
        if not presented:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            presented = (query.get("api_key") or [""])[0].encode()
        try:
            await gateway.access.check("client", presented, Trace())
        except RelayError:
            await send({"type": "websocket.close", "code": 1008})
            return
        for path, handler in self.sockets:
            found = path.match(scope["path"])
            if found:
                scope["path_params"] = found.groupdict()
                await handler(WebSocket(scope, receive, send), gateway)
                return
        await send({"type": "websocket.close", "code": 1008})

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        async with running(self.config) as gateway:
            self.gateway = gateway
            try:
                yield
            finally:
                self.gateway = None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        started = False
        try:
            async with self._running():
                started = True
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
        except Exception as exc:
            if started:
                raise
            log.exception("start-up failed")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        logs.flush()
        await send({"type": "lifespan.shutdown.complete"})


@asynccontextmanager
async def running(config: Config, job_workers: int | None = None) -> AsyncIterator[Gateway]:
    """The gateway with its models and jobs started: for serving, or for ``job_workers``
    workers alone (``llmrelay worker``)."""
    url = config.jobs.store_url(config.data_dir)
    database = open_database(url)
    bus = open_bus(url, config.jobs.redis)
    async with create_session() as http:
        gateway = Gateway(config, http, database, bus)
        jobs = JobService(config.jobs, gateway, database, bus, job_workers)
        try:
            await database.open()
            await bus.open()
            await gateway.start()
            await jobs.start()
            gateway.jobs = jobs
            yield gateway
        finally:
            await jobs.close()
            await gateway.close()
            await bus.close()
            await database.close()


def create_app(config: Config) -> ASGIApp:
    app = App(config)
    return GatewayMiddleware(
        app,
        max_body_bytes=config.max_body_bytes,
        cors_origins=config.cors_origins,
        keep_bytes=config.kept_bytes,
        ended=app.ended,
    )
