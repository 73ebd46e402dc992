"""Ollama, translated both ways."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..chunks import StreamBuilder
from ..images import Image
from ..schemas import ChatCompletionRequest, JSONObject
from .translating import StreamTranslator, TranslatingProvider, TranslatingSpec


class OllamaSpec(TranslatingSpec):
    default_key_env = None
    key_required = False

    provider: Literal["ollama"]
    base_url: str = Field(
        default="http://localhost:11434", description="The root the Ollama SDK takes."
    )


class OllamaProvider(TranslatingProvider):
    spec_type = OllamaSpec
    owned_by = "ollama"

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
