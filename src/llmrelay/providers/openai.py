"""OpenAI-compatible upstreams: OpenAI itself, vLLM, Ollama's /v1, LM Studio, and so on.

Requests pass through with only ``model`` rewritten, so fields the gateway does
not know reach the upstream unchanged; replies are checked for shape and relayed.
"""

from __future__ import annotations

from typing import Any, Literal

import aiohttp
import orjson
from pydantic import Field, SecretStr

from ..errors import RelayError, UpstreamMalformed, upstream_error
from ..schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    JSONObject,
)
from ..schemas.common import OpenRequest
from ..streaming import Relayed, SSEDecoder, lf_only, plain_data_events
from ..upstream import upstream_errors
from .base import ChunkStream, ModelSpec, Provider


class OpenAISpec(ModelSpec):
    provider: Literal["openai"]
    base_url: str = Field(
        default="https://api.openai.com/v1", description="The root the OpenAI SDK takes, with /v1."
    )
    api_key: SecretStr | None = None
    api_key_env: str | None = Field(default=None, description="Read the key from this variable.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra upstream headers.")
    timeout: float = Field(default=600, gt=0, description="Seconds for a whole reply.")
    connect_timeout: float = Field(default=10, gt=0)
    idle_timeout: float = Field(
        default=60, gt=0, description="Seconds a stream may go without a byte."
    )


class OpenAIProvider(Provider):
    spec_type = OpenAISpec
    owned_by = "openai"
    spec: OpenAISpec

    def __init__(self, spec: OpenAISpec, http: aiohttp.ClientSession) -> None:
        super().__init__(spec, http)
        self._base = spec.base_url.rstrip("/")
        self._secrets = [spec.api_key.get_secret_value()] if spec.api_key else []
        self._headers = {"content-type": "application/json", **spec.headers}
        if self._secrets:
            self._headers["authorization"] = f"Bearer {self._secrets[0]}"
        self._whole = aiohttp.ClientTimeout(total=spec.timeout, connect=spec.connect_timeout)
        self._streamed = aiohttp.ClientTimeout(
            connect=spec.connect_timeout, sock_read=spec.idle_timeout
        )

    async def chat(self, request: ChatCompletionRequest) -> JSONObject:
        return await self._whole_reply("/chat/completions", request, "choices")

    def chat_stream(self, request: ChatCompletionRequest) -> ChunkStream:
        return self._stream("/chat/completions", request)

    async def completion(self, request: CompletionRequest) -> JSONObject:
        return await self._whole_reply("/completions", request, "choices")

    def completion_stream(self, request: CompletionRequest) -> ChunkStream:
        return self._stream("/completions", request)

    async def embeddings(self, request: EmbeddingRequest) -> JSONObject:
        return await self._whole_reply("/embeddings", request, "data")

    def _payload(self, request: OpenRequest) -> bytes:
        return request.wire_json(model=self.spec.upstream_model)

    async def _whole_reply(self, path: str, request: OpenRequest, list_key: str) -> JSONObject:
        with upstream_errors(self.name):
            async with self.http.post(
                self._base + path,
                data=self._payload(request),
                headers=self._headers,
                timeout=self._whole,
            ) as response:
                body = await response.read()
        if response.status >= 400:
            raise upstream_error(response.status, body, response.headers, self._secrets)
        return _decode_reply(body, list_key, self.name)

    async def _stream(self, path: str, request: OpenRequest) -> ChunkStream:
        with upstream_errors(self.name):
            response = await self.http.post(
                self._base + path,
                data=self._payload(request),
                headers=self._headers,
                timeout=self._streamed,
            )
        try:
            if response.status >= 400:
                with upstream_errors(self.name):
                    body = await response.read()
                raise upstream_error(response.status, body, response.headers, self._secrets)
            pending = b""
            with upstream_errors(self.name):
                async for data in response.content.iter_any():
                    pending = lf_only(pending + data)
                    cut = pending.rfind(b"\n\n") + 2
                    if cut == 1:
                        continue  # no whole event yet
                    batch, done, failure = self._batch(pending[:cut])
                    pending = pending[cut:]
                    if batch:
                        yield batch  # what came before a failure still goes out first
                    if failure is not None:
                        raise failure
                    if done:
                        return
            raise UpstreamMalformed(f"The upstream for '{self.name}' ended its stream early.")
        finally:
            response.release()

    def _batch(self, block: bytes) -> tuple[list[JSONObject], bool, RelayError | None]:
        """The chunks in a block of whole SSE events, whether it ended the stream with [DONE],
        and the failure that came after them, if one did."""
        plain = plain_data_events(block)
        if plain is not None:
            array, wire, done = plain
            chunks = self._decode(array)
            if isinstance(chunks, list) and all(type(chunk) is dict for chunk in chunks):
                return Relayed(chunks, wire), done, None
        batch: list[JSONObject] = []
        for event in SSEDecoder().feed(block):
            if event.data == b"[DONE]":
                return batch, True, None
            try:
                chunk = self._decode(event.data)
                if not isinstance(chunk, dict):
                    raise self._malformed()
            except UpstreamMalformed as exc:
                return batch, False, exc
            if chunk.get("error") is not None:
                # An error after a 200: only its words reach the client, in an error event.
                return batch, False, upstream_error(502, event.data, {}, self._secrets)
            batch.append(chunk)
        return batch, False, None

    def _decode(self, data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self._malformed() from None

    def _malformed(self) -> UpstreamMalformed:
        return UpstreamMalformed(f"The upstream for '{self.name}' sent a malformed chunk.")


def _decode_reply(body: bytes, list_key: str, model: str) -> JSONObject:
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError:
        reply = None
    if not isinstance(reply, dict) or not isinstance(reply.get(list_key), list):
        raise UpstreamMalformed(f"The upstream for '{model}' sent a malformed reply.")
    return reply
