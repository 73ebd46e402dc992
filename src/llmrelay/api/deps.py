"""What every router shares: the gateway dependency, body parsing, and JSON and SSE replies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from ..errors import InvalidRequest, UpstreamMalformed
from ..gateway import Gateway
from ..providers import ChunkStream
from ..schemas import JSONObject
from ..streaming import EventStreamResponse, openai_events, run_until_disconnect

M = TypeVar("M", bound=BaseModel)

# Schemas of request bodies the routers parse themselves, for /openapi.json.
_BODY_SCHEMAS: dict[str, Any] = {}


async def get_gateway(request: Request) -> Gateway:
    # async, so that FastAPI calls it inline rather than in a worker thread.
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def parse_body(request: Request, model: type[M]) -> M:
    """Validate the body with pydantic's own JSON parser, so a bad field is a 400 naming it.

    Routers parse bodies themselves rather than through FastAPI's body
    parameters, which would turn errors into 422s and decode the JSON twice.
    """
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _invalid(exc) from None


def parse_data(data: Any, model: type[M]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> InvalidRequest:
    error = exc.errors(include_url=False)[0]
    if error["type"] == "json_invalid":
        return InvalidRequest(
            "We could not parse the JSON body of your request. It must be a valid JSON object."
        )
    loc = [str(part) for part in error["loc"]]
    param = ".".join(loc) or None
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        message = f"'{param}' is a required property."
    elif error["type"] == "too_short" and error.get("input") == []:
        message = f"'{param}' must not be empty."
    elif param:
        message = f"Invalid '{param}': {message}"
    return InvalidRequest(message, param=param)


def json_response(body: JSONObject, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


Framing = Callable[[list[JSONObject], ChunkStream], AsyncIterator[bytes]]


async def stream_response(
    request: Request, stream: ChunkStream, framing: Framing = openai_events
) -> Response:
    """Start an SSE reply once the first batch is in, so that failures before it are plain errors."""
    try:
        first = await run_until_disconnect(anext(stream, None), request.receive)
    except BaseException:
        await stream.aclose()
        raise
    if first is None:
        raise UpstreamMalformed("The upstream sent an empty stream.")
    return EventStreamResponse(framing(first, stream))


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body that a router parses itself."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
    _BODY_SCHEMAS.update(schema.pop("$defs", {}))
    _BODY_SCHEMAS[model.__name__] = schema
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(_BODY_SCHEMAS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
