"""Liveness and readiness probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..gateway import Gateway
from .deps import json_response
from .routing import endpoint

TAG = "Health"


@endpoint("GET", "/health", TAG, access="public")
async def health(request: Request, gateway: Gateway) -> Response:
    """The process is up and serving HTTP."""
    return json_response({"status": "ok"})


@endpoint("GET", "/health/ready", TAG, access="public")
async def ready(request: Request, gateway: Gateway) -> Response:
    """The config is loaded and every model, the local one included, can serve."""
    models = {name: p.ready for name, p in gateway.models.items()}
    ok = all(models.values())
    status = 200 if ok else 503
    return json_response({"status": "ready" if ok else "starting", "models": models}, status)


ENDPOINTS = [health, ready]
