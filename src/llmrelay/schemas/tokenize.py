"""vLLM's ``/tokenize`` and ``/detokenize`` request shapes."""

from __future__ import annotations

from pydantic import model_validator

from .chat import Message
from .common import OpenRequest


class TokenizeRequest(OpenRequest):
    model: str | None = None
    prompt: str | None = None
    messages: list[Message] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool = True
    return_token_strs: bool = False

    @model_validator(mode="after")
    def _one_input(self) -> TokenizeRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        return self


class DetokenizeRequest(OpenRequest):
    model: str | None = None
    tokens: list[int]
