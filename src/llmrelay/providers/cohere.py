"""Cohere, translated both ways."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..chunks import StreamBuilder
from ..images import Image
from ..schemas import ChatCompletionRequest, JSONObject
from .translating import StreamTranslator, TranslatingProvider, TranslatingSpec


class CohereSpec(TranslatingSpec):
    default_key_env = "CO_API_KEY"
    key_required = True

    provider: Literal["cohere"]
    base_url: str = Field(
        default="https://api.cohere.com", description="The root the Cohere SDK takes."
    )


class CohereProvider(TranslatingProvider):
    spec_type = CohereSpec
    owned_by = "cohere"

    def url(self, stream: bool) -> str:
        raise NotImplementedError

    def native_request(
        self, request: ChatCompletionRequest, images: dict[str, Image], stream: bool
    ) -> JSONObject:
        raise NotImplementedError

    def reply(self, native: JSONObject) -> JSONObject:
        raise NotImplementedError

    def translator(self, builder: StreamBuilder) -> StreamTranslator:
        raise NotImplementedError
