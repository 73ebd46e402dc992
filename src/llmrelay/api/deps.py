"""What every router shares: the gateway, body parsing, and JSON and SSE replies."""

from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidRequest
from ..schemas import JSONObject
from ..schemas.common import OpenRequest
from ..trace import current_trace

M = TypeVar("M", bound=BaseModel)


async def parse_body(request: Request, model: type[M]) -> M:
    """Validate the body with pydantic's own JSON parser, so a bad field is a 400 naming it."""
    body = await request.body()
    current_trace().client_body = body  # for the inspector
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if isinstance(parsed, OpenRequest):
        parsed.parsed_from(body)
    return parsed


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


def whole_number(text: str, name: str, low: int, high: int) -> int:
    """A query parameter that must be a whole number from ``low`` to ``high``."""
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidRequest(f"'{name}' must be a whole number from {low} to {high}.", param=name)
    return int(text)


def json_response(body: JSONObject, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
