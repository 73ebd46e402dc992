"""The admin surface: virtual keys, created, listed, changed and revoked with the master key."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..gateway import Gateway
from ..keys.key import KeyFields, KeyUpdate
from .deps import json_response, parse_body
from .routing import endpoint

TAG = "Admin"


@endpoint("POST", "/admin/keys", TAG, body=KeyFields, access="admin")
async def create_key(request: Request, gateway: Gateway) -> Response:
    """Create a virtual key. Its secret, `key`, is in this reply only: it is stored hashed."""
    fields = await parse_body(request, KeyFields)
    key, secret = await gateway.keys.create(fields)
    return json_response({**key.public(), "key": secret}, 201)


@endpoint("GET", "/admin/keys", TAG, access="admin")
async def list_keys(request: Request, gateway: Gateway) -> Response:
    """Every key, revoked ones included, newest first; never their secrets."""
    keys = await gateway.keys.all()
    return json_response({"object": "list", "data": [key.public() for key in keys]})


@endpoint("GET", "/admin/keys/{key_id}", TAG, access="admin")
async def get_key(request: Request, gateway: Gateway) -> Response:
    """One key."""
    key = await gateway.keys.get(request.path_params["key_id"])
    return json_response(key.public())


@endpoint("PATCH", "/admin/keys/{key_id}", TAG, body=KeyUpdate, access="admin")
async def update_key(request: Request, gateway: Gateway) -> Response:
    """Change a key's name, models, limits, budget, system prompt or metadata."""
    update = await parse_body(request, KeyUpdate)
    key = await gateway.keys.update(request.path_params["key_id"], update)
    return json_response(key.public())


@endpoint("DELETE", "/admin/keys/{key_id}", TAG, access="admin")
async def revoke_key(request: Request, gateway: Gateway) -> Response:
    """Revoke a key, at once, on every gateway process."""
    key = await gateway.keys.revoke(request.path_params["key_id"])
    return json_response(key.public())


ENDPOINTS = [create_key, list_keys, get_key, update_key, revoke_key]
