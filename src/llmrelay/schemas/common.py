"""Building blocks shared by the request schemas of every inbound surface."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

JSONObject = dict[str, Any]
"""A decoded JSON object as it travels between routers and providers.

Responses and stream chunks stay in OpenAI's wire shape as plain dicts: they are
produced by translating adapters or decoded straight from an upstream, and
re-encoding them through model classes would cost more than the gateway's whole
latency budget on the pass-through path.
"""


class OpenModel(BaseModel):
    """A schema that keeps fields it does not know, so they reach the upstream unchanged."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class StreamOptions(OpenModel):
    include_usage: bool | None = None
