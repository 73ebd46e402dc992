"""The app factory: routers, middleware and error rendering, with a lifespan that owns
the upstream HTTP session and the models."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from . import __version__
from .api import health, openai, simple_chat, vllm
from .api.deps import install_openapi
from .config import Config
from .errors import INTERNAL_MESSAGE, RelayError
from .gateway import Gateway
from .middleware import GatewayMiddleware
from .streaming import ClientGone
from .upstream import create_session

log = logging.getLogger(__name__)


def create_app(config: Config) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with create_session() as http:
            gateway = Gateway(config, http)
            app.state.gateway = gateway
            try:
                await gateway.start()
                yield
            finally:
                await gateway.close()

    app = FastAPI(
        title="llmrelay",
        version=__version__,
        description="An LLM gateway that speaks the OpenAI wire format.",
        lifespan=lifespan,
    )
    for module in (openai, vllm, simple_chat, health):
        app.include_router(module.router)
    install_openapi(app)
    app.add_exception_handler(RelayError, _render_error)  # type: ignore[arg-type]
    app.add_exception_handler(ClientGone, _client_gone)
    app.add_exception_handler(Exception, _render_crash)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=config.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["x-request-id"],
    )
    app.add_middleware(
        GatewayMiddleware,
        api_keys=[key.get_secret_value() for key in config.api_keys],
        max_body_bytes=config.max_body_bytes,
    )
    return app


async def _render_error(request: Request, exc: RelayError) -> Response:
    if exc.status_code >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.message)
    return Response(
        exc.to_json(), exc.status_code, headers=exc.headers, media_type="application/json"
    )


async def _client_gone(request: Request, exc: Exception) -> Response:
    log.info("client disconnected; request cancelled")
    return Response(status_code=499)


async def _render_crash(request: Request, exc: Exception) -> Response:
    # The trace goes to the log; the client gets a general message and the request id.
    log.error("unhandled error", exc_info=exc)
    return Response(RelayError(INTERNAL_MESSAGE).to_json(), 500, media_type="application/json")
