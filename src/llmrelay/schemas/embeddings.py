"""The embeddings request (``POST /v1/embeddings``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import OpenRequest


class EmbeddingRequest(OpenRequest):
    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, gt=0)
    user: str | None = None
