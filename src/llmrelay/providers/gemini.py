"""Gemini, translated both ways."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..chunks import StreamBuilder
from ..images import Image
from ..schemas import ChatCompletionRequest, JSONObject
from .translating import StreamTranslator, TranslatingProvider, TranslatingSpec


class GeminiSpec(TranslatingSpec):
    default_key_env = "GEMINI_API_KEY"
    key_required = True

    provider: Literal["gemini"]
    base_url: str = Field(
        default="https://generativelanguage.googleapis.com",
        description="The root the Gemini SDK takes.",
    )


class GeminiProvider(TranslatingProvider):
    spec_type = GeminiSpec
    owned_by = "gemini"

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
