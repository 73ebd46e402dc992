"""OpenAI-compatible upstreams: OpenAI itself, vLLM, Ollama's /v1, LM Studio, and so on.

Requests pass through with only ``model`` rewritten, so fields the gateway does
not know reach the upstream unchanged; replies are checked for shape and relayed.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import Field, create_model

from ..errors import RelayError, UpstreamMalformed, upstream_error
from ..schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    JSONObject,
)
from ..schemas.common import OpenRequest, json_object
from ..streaming import Relayed, SSEDecoder, lf_only, plain_chunks
from ..upstream import upstream_errors
from .base import ChunkStream, Provider
from .http import HTTPProvider, RemoteSpec


class OpenAISpec(RemoteSpec):
    default_key_env = "OPENAI_API_KEY"

    provider: Literal["openai"]
    base_url: str = Field(
        default="https://api.openai.com/v1", description="The root the OpenAI SDK takes, with /v1."
    )


class OpenAIProvider(HTTPProvider):
    spec_type = OpenAISpec
    owned_by = "openai"

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
        body = await self.post(self.root + path, self._payload(request))
        return _decode_reply(body, list_key, self.name)

    async def _stream(self, path: str, request: OpenRequest) -> ChunkStream:
        async with self.open_stream(self.root + path, self._payload(request)) as body:
            pending = b""
            with upstream_errors(self.name):
                while data := await body.read():
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

    def _batch(self, block: bytes) -> tuple[list[JSONObject], bool, RelayError | None]:
        """The chunks in a block of whole SSE events, whether it ended the stream with [DONE],
        and the failure that came after them, if one did."""
        plain = plain_chunks(block)
        if plain is not None:
            chunks, wire, done = plain
            return Relayed(chunks, wire), done, None
        batch: list[JSONObject] = []
        for event in SSEDecoder().feed(block):
            if event == b"[DONE]":
                return batch, True, None
            try:
                chunk = self._decode(event)
                if not isinstance(chunk, dict):
                    raise self._malformed()
            except UpstreamMalformed as exc:
                return batch, False, exc
            if chunk.get("error") is not None:
                # An error after a 200: only its words reach the client, in an error event.
                return batch, False, upstream_error(502, event, {}, self.secrets)
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
    reply = json_object(body)
    if reply is None or not isinstance(reply.get(list_key), list):
        raise UpstreamMalformed(f"The upstream for '{model}' sent a malformed reply.")
    return reply


def preset(name: str, base_url: str, key_env: str, key_required: bool = True) -> type[Provider]:
    """An OpenAI-compatible service under its own provider name, with its public endpoint
    and key variable as defaults."""
    title = name.title().replace("_", "")
    tag: Any = Literal[name]
    spec_type: type[OpenAISpec] = create_model(
        f"{title}Spec",
        __base__=OpenAISpec,
        provider=(tag, ...),
        base_url=(str, Field(default=base_url, description="The root, with /v1.")),
    )
    spec_type.default_key_env = key_env
    spec_type.key_required = key_required
    namespace = {"spec_type": spec_type, "owned_by": name, "__module__": __name__}
    return type(f"{title}Provider", (OpenAIProvider,), namespace)


PRESETS = {
    "vllm": preset("vllm", "http://localhost:8000/v1", "VLLM_API_KEY", key_required=False),
    "groq": preset("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "together": preset("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "mistral": preset("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "deepseek": preset("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "openrouter": preset("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
}
