"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from .deps import GatewayDep, json_response

router = APIRouter(tags=["Health"])


@router.get("/health")
async def health() -> Response:
    """The process is up and serving HTTP."""
    return json_response({"status": "ok"})


@router.get("/health/ready")
async def ready(gateway: GatewayDep) -> Response:
    """The config is loaded and every model, the local one included, can serve."""
    models = {name: p.ready for name, p in gateway.providers.items()}
    ok = all(models.values())
    return json_response({"status": "ready" if ok else "starting", "models": models}, 200 if ok else 503)
