"""The shared half of every adapter that translates OpenAI requests into another wire
format: what it cannot honour is refused by name, images are loaded inline, whole
replies and streams are fetched, and streams are decoded and fed to the adapter's
translator one event at a time.

An adapter supplies the format itself: its URLs, ``native_request``, ``reply``
and a ``StreamTranslator``.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import aiohttp
import orjson
from pydantic import Field

from ..chunks import StreamBuilder
from ..errors import InvalidRequest, RelayError, UnsupportedParameter, UpstreamMalformed
from ..images import Image, ImageFetcher
from ..schemas import ChatCompletionRequest, CompletionRequest, JSONObject
from ..schemas.chat import ImagePart
from ..schemas.common import json_object
from ..streaming import EventDecoder, SSEDecoder
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
    """Turns one upstream stream's events into OpenAI chunks, built in a ``StreamBuilder``;
    ``provider`` maps the errors that arrive in the stream."""

    def __init__(self, builder: StreamBuilder, provider: TranslatingProvider) -> None:
        self.out = builder
        self.provider = provider
        self.finished = False

    @abc.abstractmethod
    def feed(self, event: JSONObject) -> None:
        """Build the chunks for one event; raises the mapped error for an error event."""


def decode_events(events: list[bytes], model: str) -> list[JSONObject]:
    """The JSON objects in events' data, parsed in one go, leaving out a ``[DONE]`` sentinel
    (which some upstreams send after their own end of stream)."""
    events = [event for event in events if event != b"[DONE]"]
    try:
        decoded = orjson.loads(b"[" + b",".join(events) + b"]") if events else []
    except orjson.JSONDecodeError:
        decoded = None
    if decoded is None or len(decoded) != len(events) or any(type(d) is not dict for d in decoded):
        raise UpstreamMalformed(f"The upstream for '{model}' sent a malformed event.")
    return decoded


class TranslatingProvider(HTTPProvider):
    spec: TranslatingSpec
    # OpenAI request fields the upstream has no way to honour.
    unsupported: ClassVar[frozenset[str]] = frozenset()
    # How the upstream frames its stream's events.
    decoder: ClassVar[type[EventDecoder]] = SSEDecoder

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
        out = StreamBuilder(self.name)
        translator = self.translator(out)
        decoder = self.decoder()
        async with self.open_stream(self.url(stream=True), payload) as body:
            with upstream_errors(self.name):
                more = True
                while more and not translator.finished:
                    data = await body.read()
                    more = bool(data)
                    events = decoder.feed(data) if more else decoder.close()
                    try:
                        for event in decode_events(events, self.name):
                            translator.feed(event)
                    except RelayError:
                        if out.ready:
                            yield out.take()  # what came before the failure still goes out first
                        raise
                    if events and not translator.finished:
                        # The reply has begun: the client hears so at once, as from OpenAI,
                        # rather than when the first content comes.
                        out.start()
                        yield out.take()  # each read's chunks go out together
        if not translator.finished:
            raise UpstreamMalformed(f"The upstream for '{self.name}' ended its stream early.")
        # The last read's chunks go out with the end, in one write.
        yield out.end(with_usage=request.wants_usage_in_stream)

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

    def refuse_serial_tool_calls(self, request: ChatCompletionRequest) -> None:
        """For an upstream that may always call tools in parallel and has no switch to stop it."""
        if request.parallel_tool_calls is False:
            self.refuse("parallel_tool_calls", " set to false (it cannot turn parallel calls off)")

    def _refuse_unsupported(self, request: ChatCompletionRequest) -> None:
        for field in sorted(self.unsupported & request.model_fields_set):
            if getattr(request, field) is not None:
                self.refuse(field)
