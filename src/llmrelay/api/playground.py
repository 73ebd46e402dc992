"""The web playground: the app in ``llmrelay/ui``, served at ``/`` and under ``/ui/``.

Every asset ships in the package and the content security policy allows only
this origin, so the page works offline and cannot reach anywhere else.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import replace
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from ..errors import NotFound
from ..gateway import Gateway
from .routing import endpoint

ROOT = Path(__file__).resolve().parent.parent / "ui"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:;"
    " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".svg": "image/svg+xml"}


@cache
def _asset(path: str) -> tuple[bytes, str, str]:
    """An asset's bytes, media type and ETag, read once: they change only with the package."""
    file = (ROOT / path).resolve()
    if not file.is_relative_to(ROOT) or not file.is_file():
        raise NotFound(f"Unknown path: /ui/{path}")
    body = file.read_bytes()
    media = TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "text/plain"
    if media.startswith("text/") or media == "image/svg+xml":
        media += "; charset=utf-8"
    return body, media, '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'


def _serve(request: Request, path: str) -> Response:
    body, media, etag = _asset(path)
    # Revalidated on every load, so an upgraded gateway never runs a stale page.
    headers = {
        "etag": etag,
        "cache-control": "no-cache",
        "content-security-policy": POLICY,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media, headers=headers)


@endpoint("GET", "/", "Playground", documented=False, access="public")
async def home(request: Request, gateway: Gateway) -> Response:
    return _serve(request, "index.html")


@endpoint("GET", "/ui/{path:path}", "Playground", documented=False, access="public")
async def asset(request: Request, gateway: Gateway) -> Response:
    return _serve(request, request.path_params["path"])


ENDPOINTS = [home, replace(home, path="/ui/"), asset]
