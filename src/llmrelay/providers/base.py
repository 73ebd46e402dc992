"""The one small interface every provider adapter implements, and its config base.

An adapter knows only its own wire format. It is built from a validated
``ModelSpec`` and an HTTP session that the app owns, receives canonical
requests, and returns OpenAI-shaped dicts. It never reads the environment and
never sees the inbound HTTP request.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidRequest
from ..resilience.policy import Timeouts
from ..schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
    JSONObject,
    TokenizeRequest,
)
from ..streaming import ChunkStream as ChunkStream


class ModelSpec(BaseModel):
    """The config entry for one model name. Each provider subclasses it with its own fields."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="The name clients send as 'model'.")
    provider: str
    model: str | None = Field(default=None, description="The upstream's own id; defaults to name.")
    id: str | None = Field(
        default=None,
        description="Names the deployment in x-llmrelay-deployment and the logs; "
        "<name>/<index> by default.",
    )
    weight: float = Field(default=1, gt=0, description="Its share of the model's requests.")
    max_parallel: int | None = Field(
        default=None, gt=0, description="Requests at once; more wait in its queue."
    )
    max_queue: int = Field(default=100, ge=0, description="Requests that may wait for a slot.")
    queue_timeout: float = Field(default=30, gt=0, description="Seconds a request may wait.")
    # The model's timeouts, which the config gives every deployment.
    timeouts: Timeouts = Field(default_factory=Timeouts)

    @property
    def upstream_model(self) -> str:
        return self.model or self.name


class Provider(abc.ABC):
    """One configured model, served by one adapter."""

    spec_type: ClassVar[type[ModelSpec]]
    owned_by: ClassVar[str]
    # Whether tokens cost money; a model run by the gateway or on one's own machine is free.
    billed: ClassVar[bool] = True
    # What a request may hold, as the model list shows it (the playground offers images by it).
    input_modalities: ClassVar[tuple[str, ...]] = ("text", "image")

    def __init__(self, spec: Any, http: aiohttp.ClientSession) -> None:
        self.spec = spec
        self.http = http

    @property
    def name(self) -> str:
        return str(self.spec.name)

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire what the adapter needs before it can serve (a model, a warm pool)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``start`` acquired."""

    @property
    def ready(self) -> bool:
        return True

    def card(self) -> JSONObject:
        return {
            "id": self.name,
            "object": "model",
            "created": 0,
            "owned_by": self.owned_by,
            "input_modalities": list(self.input_modalities),
        }

    @abc.abstractmethod
    async def chat(self, request: ChatCompletionRequest) -> JSONObject: ...

    @abc.abstractmethod
    def chat_stream(self, request: ChatCompletionRequest) -> ChunkStream: ...

    @abc.abstractmethod
    async def completion(self, request: CompletionRequest) -> JSONObject: ...

    @abc.abstractmethod
    def completion_stream(self, request: CompletionRequest) -> ChunkStream: ...

    async def embeddings(self, request: EmbeddingRequest) -> JSONObject:
        raise InvalidRequest(
            f"The model '{self.name}' cannot create embeddings.",
            param="model",
            code="model_not_supported",
        )

    async def count_tokens(self, request: ChatCompletionRequest) -> int:
        """The input tokens ``request`` would use."""
        raise InvalidRequest(
            f"The model '{self.name}' cannot count tokens in the gateway; "
            "local and Anthropic models can.",
            param="model",
            code="model_not_supported",
        )

    async def tokenize(self, request: TokenizeRequest) -> JSONObject:
        raise self._no_tokenizer()

    async def detokenize(self, request: DetokenizeRequest) -> JSONObject:
        raise self._no_tokenizer()

    def _no_tokenizer(self) -> InvalidRequest:
        return InvalidRequest(
            f"The model '{self.name}' has no tokenizer in the gateway; "
            "tokenize and detokenize work with local models.",
            param="model",
            code="model_not_supported",
        )
