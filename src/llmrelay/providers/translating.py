"""The shared half of every adapter that translates OpenAI requests into another wire
format: what it cannot honour is refused by name, images are loaded inline, whole
replies and streams are fetched, and streams are decoded and fed to the adapter's
translator one event at a time.

An adapter supplies the format itself: its URLs, ``native_request``, ``reply``
and a ``StreamTranslator``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import ClassVar, Literal

import aiohttp
import orjson
from pydantic import Field

from ..chunks import StreamBuilder
from ..errors import InvalidRequest, RelayError, UnsupportedParameter, UpstreamMalformed
from ..images import Image, ImageFetcher
from ..schemas import ChatCompletionRequest, CompletionRequest, JSONObject
from ..schemas.chat import ImagePart
from ..schemas.common import json_object
from ..streaming import SSEDecoder, SSEEvent
from ..upstream import upstream_errors
from .base import ChunkStream
from .http import HTTPProvider, RemoteSpec


class TranslatingSpec(RemoteSpec):
    image_max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    image_timeout: float = Field(default=10, gt=0)
    image_allow_private: bool = Field(
        default=False, description="Let image URLs point at loopback and private addresses."
    )


class StreamTranslator(abc.ABC):
    """Turns one upstream stream's events into OpenAI chunks, through a ``StreamBuilder``."""

    def __init__(self, builder: StreamBuilder) -> None:
        self.out = builder
        self.finished = False

    @abc.abstractmethod
    def feed(self, event: SSEEvent) -> list[JSONObject]:
        """The chunks for one event; raises the mapped error for an error event."""


class TranslatingProvider(HTTPProvider):
    spec: TranslatingSpec
    # OpenAI request fields the upstream has no way to honour.
    unsupported: ClassVar[frozenset[str]] = frozenset()
    framing: ClassVar[Literal["sse", "ndjson"]] = "sse"

    def __init__(self, spec: TranslatingSpec, http: aiohttp.ClientSession) -> None:
        super().__init__(spec, http)
        self.images = ImageFetcher(
            max_bytes=spec.image_max_bytes,
            timeout=spec.image_timeout,
            allow_private=spec.image_allow_private,
        )

    async def close(self) -> None:
        await self.images.close()

    # -- what each adapter supplies ----------------------------------------------------------

    @abc.abstractmethod
    def url(self, stream: bool) -> str: ...

    @abc.abstractmethod
    def native_request(
        self, request: ChatCompletionRequest, images: dict[str, Image], stream: bool
    ) -> JSONObject: ...

    @abc.abstractmethod
    def reply(self, native: JSONObject) -> JSONObject:
        """The OpenAI ``chat.completion`` for the upstream's whole reply."""

    @abc.abstractmethod
    def translator(self, builder: StreamBuilder) -> StreamTranslator: ...

    # -- the shared half ---------------------------------------------------------------------

    async def chat(self, request: ChatCompletionRequest) -> JSONObject:
        payload = await self._payload(request, stream=False)
        body = await self.post(self.url(stream=False), payload)
        native = json_object(body)
        if native is None:
            raise UpstreamMalformed(f"The upstream for '{self.name}' sent a malformed reply.")
        return self.reply(native)

    async def chat_stream(self, request: ChatCompletionRequest) -> ChunkStream:
        payload = await self._payload(request, stream=True)
        translator = self.translator(StreamBuilder(self.name))
        async with self.open_stream(self.url(stream=True), payload) as response:
            async for events in self._events(response):
                batch: list[JSONObject] = []
                try:
                    for event in events:
                        batch.extend(translator.feed(event))
                except RelayError:
                    if batch:
                        yield batch  # what came before the failure still goes out first
                    raise
                if batch:
                    yield batch
                if translator.finished:
                    break
        if not translator.finished:
            raise UpstreamMalformed(f"The upstream for '{self.name}' ended its stream early.")
        yield translator.out.end(with_usage=request.wants_usage_in_stream)

    async def completion(self, request: CompletionRequest) -> JSONObject:
        raise self._no_completions()

    def completion_stream(self, request: CompletionRequest) -> ChunkStream:
        raise self._no_completions()

    def _no_completions(self) -> InvalidRequest:
        return InvalidRequest(
            f"The model '{self.name}' serves chat only: use /v1/chat/completions.",
            param="model",
            code="model_not_supported",
        )

    async def _payload(self, request: ChatCompletionRequest, stream: bool) -> bytes:
        self._refuse_unsupported(request)
        images = await self.load_images(request)
        return orjson.dumps(self.native_request(request, images, stream))

    async def load_images(self, request: ChatCompletionRequest) -> dict[str, Image]:
        """Every image in the request as inline data, by its URL."""
        return {
            part.image_url.url: await self.images.load(part.image_url.url)
            for message in request.messages
            if isinstance(message.content, list)
            for part in message.content
            if isinstance(part, ImagePart)
        }

    def refuse(self, field: str, when: str = "") -> None:
        """Refuse a field the upstream cannot honour, unless the model drops such fields
        (then the caller leaves it out). ``when`` says which values are refused."""
        if not self.spec.drop_unsupported_params:
            raise UnsupportedParameter(field, f"the '{self.spec.provider}' provider{when}")

    def _refuse_unsupported(self, request: ChatCompletionRequest) -> None:
        for field in sorted(self.unsupported & request.model_fields_set):
            if getattr(request, field) is not None:
                self.refuse(field)

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncIterator[list[SSEEvent]]:
        """The upstream's events, batched as they arrived; NDJSON lines become data events."""
        decoder = SSEDecoder()
        pending = b""
        with upstream_errors(self.name):
            async for data in response.content.iter_any():
                if self.framing == "sse":
                    events = decoder.feed(data)
                else:
                    *lines, pending = (pending + data).split(b"\n")
                    events = [SSEEvent(None, line) for line in lines if line.strip()]
                if events:
                    yield events
        if pending.strip():
            yield [SSEEvent(None, pending)]


def decode_event(event: SSEEvent, model: str) -> JSONObject:
    """An event's JSON object, or the malformed-upstream error."""
    data = json_object(event.data)
    if data is None:
        raise UpstreamMalformed(f"The upstream for '{model}' sent a malformed event.")
    return data
