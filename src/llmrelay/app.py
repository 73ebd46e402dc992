"""The app factory: the ASGI app that routes to the endpoints, wrapped in the gateway's
middleware, with a lifespan that owns the upstream HTTP session and the models."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from . import __version__, logs
from .api import anthropic, health, jobs, openai, simple_chat, vllm
from .api.deps import json_response
from .api.routing import Endpoint, Router, endpoint, openapi_document, swagger_page
from .config import Config
from .gateway import Gateway
from .jobs.service import JobService
from .middleware import GatewayMiddleware
from .upstream import create_session

log = logging.getLogger(__name__)

TITLE = "llmrelay"
ENDPOINTS: list[Endpoint] = [
    *openai.ENDPOINTS,
    *jobs.ENDPOINTS,
    *anthropic.ENDPOINTS,
    *simple_chat.ENDPOINTS,
    *vllm.ENDPOINTS,
    *health.ENDPOINTS,
]
OPENAPI = openapi_document(ENDPOINTS, TITLE, __version__)


@endpoint("GET", "/openapi.json", "Docs", documented=False)
async def openapi_json(request: Request, gateway: Gateway) -> Response:
    return json_response(OPENAPI)


@endpoint("GET", "/docs", "Docs", documented=False)
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
        response = await endpoint.handler(Request(scope, receive), self.gateway)
        await response(scope, receive, send)

    async def _socket(self, scope: Scope, receive: Receive, send: Send, gateway: Gateway) -> None:
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
    async with create_session() as http:
        gateway = Gateway(config, http)
        jobs = JobService(config.jobs, config.data_dir, gateway, job_workers)
        try:
            await gateway.start()
            await jobs.start()
            gateway.jobs = jobs
            yield gateway
        finally:
            await jobs.close()
            await gateway.close()


def create_app(config: Config) -> ASGIApp:
    return GatewayMiddleware(
        App(config),
        api_keys=[key.get_secret_value() for key in config.api_keys],
        max_body_bytes=config.max_body_bytes,
        cors_origins=config.cors_origins,
    )
