"""Declaring endpoints once: each is routed by ``Router`` and documented in /openapi.json.

The gateway routes requests itself rather than through FastAPI or Starlette's
router: measured on the chat pass-through, their per-request dependency,
routing and exception layers cost over a third of the throughput. Exact paths
are one dict lookup; the few templated ones are matched by regex.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import compile_path

from ..errors import MethodNotAllowed, NotFound
from ..gateway import Gateway
from ..keys.access import Level

Handler = Callable[[Request, Gateway], Awaitable[Response]]


@dataclass(frozen=True)
class QueryParam:
    name: str
    description: str
    required: bool = False


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    tag: str
    body: type[BaseModel] | None = None
    query: Sequence[QueryParam] = field(default_factory=tuple)
    stream: bool = False
    documented: bool = True
    access: Level = "client"


class Router:
    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self.exact: dict[str, dict[str, Endpoint]] = {}
        by_template: dict[str, dict[str, Endpoint]] = {}
        for ep in endpoints:
            methods = self.exact if "{" not in ep.path else by_template
            methods.setdefault(ep.path, {})[ep.method] = ep
        self.templated: list[tuple[Any, dict[str, Any], dict[str, Endpoint]]] = [
            (*_compiled(path), methods) for path, methods in by_template.items()
        ]

    def match(self, method: str, path: str) -> tuple[Endpoint, dict[str, Any]]:
        """The endpoint and path parameters for a request, or the 404/405 to answer."""
        params: dict[str, Any] = {}
        by_method = self.exact.get(path)
        if by_method is None:
            for regex, convertors, candidates in self.templated:
                found = regex.match(path)
                if found:
                    by_method = candidates
                    params = {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
                    break
        if by_method is None:
            raise NotFound(f"Unknown path: {path}")
        endpoint = by_method.get(method) or (by_method.get("GET") if method == "HEAD" else None)
        if endpoint is None:
            raise MethodNotAllowed(
                f"{method} is not allowed on {path}.", headers={"allow": ", ".join(by_method)}
            )
        return endpoint, params


def _compiled(path: str) -> tuple[Any, dict[str, Any]]:
    regex, _, convertors = compile_path(path)
    return regex, convertors


def endpoint(
    method: str,
    path: str,
    tag: str,
    *,
    body: type[BaseModel] | None = None,
    query: Sequence[QueryParam] = (),
    stream: bool = False,
    documented: bool = True,
    access: Level = "client",
) -> Callable[[Handler], Endpoint]:
    def declare(handler: Handler) -> Endpoint:
        return Endpoint(method, path, handler, tag, body, tuple(query), stream, documented, access)

    return declare


def openapi_document(endpoints: Sequence[Endpoint], title: str, version: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {"ErrorResponse": _ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for ep in endpoints:
        if not ep.documented:
            continue
        doc = inspect.getdoc(ep.handler) or ""
        summary, _, description = doc.partition("\n")
        operation: dict[str, Any] = {
            "tags": [ep.tag],
            "summary": summary,
            "operationId": ep.handler.__name__,
            "responses": {
                "200": {"description": "OK", "content": _success_content(ep.stream)},
                "default": {
                    "description": "An error in OpenAI's shape",
                    "content": {"application/json": {"schema": _ref("ErrorResponse")}},
                },
            },
        }
        if description.strip():
            operation["description"] = description.strip()
        if ep.body is not None:
            schema = ep.body.model_json_schema(
                ref_template="#/components/schemas/{model}", by_alias=True
            )
            schemas.update(schema.pop("$defs", {}))
            schemas[ep.body.__name__] = schema
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(ep.body.__name__)}},
            }
        parameters = [
            {
                "name": p.name,
                "in": "query",
                "required": p.required,
                "description": p.description,
                "schema": {"type": "string"},
            }
            for p in ep.query
        ]
        parameters += [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_params(ep.path)
        ]
        if parameters:
            operation["parameters"] = parameters
        paths.setdefault(_openapi_path(ep.path), {})[ep.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def swagger_page(title: str) -> HTMLResponse:
    return HTMLResponse(_SWAGGER.replace("{title}", title))


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _success_content(stream: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if stream:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    return content


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def _openapi_path(path: str) -> str:
    return "/".join(
        "{" + part[1:-1].split(":")[0] + "}" if part.startswith("{") else part
        for part in path.split("/")
    )


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

_SWAGGER = """<!doctype html>
<html><head><title>{title} - API docs</title><meta charset="utf-8">
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""
