"""Building blocks shared by the request schemas of every inbound surface."""

from __future__ import annotations

from typing import Any, Self

import orjson
from pydantic import BaseModel, ConfigDict

JSONObject = dict[str, Any]
"""A decoded JSON object as it travels between routers and providers.

Responses and stream chunks stay in OpenAI's wire shape as plain dicts: they are
produced by translating adapters or decoded straight from an upstream, and
re-encoding them through model classes would cost more than the gateway's whole
latency budget on the pass-through path.
"""


def json_object(data: bytes | str) -> JSONObject | None:
    """``data`` decoded, when it is a JSON object; None for anything else, valid JSON or not."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class OpenModel(BaseModel):
    """A schema that keeps fields it does not know, so they reach the upstream unchanged."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class OpenRequest(OpenModel):
    """A whole request body, which can be forwarded as the bytes the client sent."""

    # The JSON body this was parsed from, when it came from a client as is: an upstream
    # that speaks the same format can be sent those bytes rather than a re-encoding; and
    # the fields the gateway changed since, as JSON values. Slots, not pydantic private
    # attributes, which would cost an initialiser call per model.
    __slots__ = ("_changes", "_source")

    def parsed_from(self, body: bytes) -> Self:
        """Remember the client's bytes this was validated from."""
        # Past pydantic's __setattr__, which looks for validators and private attributes first.
        object.__setattr__(self, "_source", body)
        # Both slots set, so that reading them never falls through to pydantic's __getattr__.
        object.__setattr__(self, "_changes", None)
        return self

    def with_fields(self, **fields: Any) -> Self:
        """A copy with ``fields`` changed, which still goes upstream as the client's bytes
        with those fields put in, rather than as a whole re-encoding."""
        copy = self.model_copy(update=fields)
        source: bytes | None = getattr(self, "_source", None)
        if source is not None:
            changes = dict(getattr(self, "_changes", None) or {})
            changes.update((k, _json(v)) for k, v in fields.items())
            object.__setattr__(copy, "_source", source)
            object.__setattr__(copy, "_changes", changes)
        return copy

    def wire_json(self, **overrides: Any) -> bytes:
        """This request as JSON, with ``overrides`` set: the client's own bytes when possible."""
        source: bytes | None = getattr(self, "_source", None)
        changes: dict[str, Any] | None = getattr(self, "_changes", None)
        if source is not None and all(getattr(self, k, None) == v for k, v in overrides.items()):
            if not changes:
                return source
            appended = _appended(source, changes)
            if appended is not None:
                return appended
        if source is not None:
            payload = orjson.loads(source)
            payload.update(changes or {})
        else:
            payload = self.model_dump(exclude_unset=True, by_alias=True)
        payload.update(overrides)
        return orjson.dumps(payload)


def _appended(source: bytes, changes: dict[str, Any]) -> bytes | None:
    """The JSON object ``source`` with ``changes`` added after its last member, when no
    change's name shows anywhere in it: a field the client did not send (stream_options,
    most often) costs a few bytes rather than a decoding and an encoding of the body."""
    body = source.rstrip()
    if not body.endswith(b"}") or any(f'"{name}"'.encode() in body for name in changes):
        return None
    body = body[:-1].rstrip()
    comma = b"" if body.endswith(b"{") else b","
    return body + comma + orjson.dumps(changes)[1:-1] + b"}"


def _json(value: Any) -> Any:
    """A field's value as its JSON value."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True, by_alias=True)
    if isinstance(value, list):
        return [_json(item) for item in value]
    return value


class StreamOptions(OpenModel):
    include_usage: bool | None = None
