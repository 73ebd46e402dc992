"""A served model as the endpoints and job workers use it: with the calling key's system
prompt put in, answered from the cache when it can be, and with every answer's tokens
and cost counted into the request's trace.

Usage is counted for every request, streams included. A stream whose client
did not ask for usage is asked for it upstream all the same, and the usage is
taken out of what the client receives. When a backend reports nothing, or the
client hangs up first, the counts are estimated from the text, and say so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from .. import cache as caching
from ..chunks import ChatAccumulator, replay
from ..errors import PermissionDenied
from ..keys.key import VirtualKey
from ..keys.limits import Limiter
from ..providers import ChunkStream
from ..resilience.model import ServedModel
from ..schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
    JSONObject,
    TokenizeRequest,
)
from ..schemas.chat import Message
from ..schemas.common import StreamOptions
from ..streaming import Relayed
from ..trace import Trace, Usage, current_trace
from .pricing import Price

CHARS_PER_TOKEN = 4  # a rough rule for English text, for counts no backend reported
_USAGE = b'"usage"'
_NULLS = (b'"usage":null', b' "usage": null')  # compact, and as Python's json writes it
# What an OpenAI chunk's bytes hold besides its text: the SSE framing, id, model, and so on.
_FRAME = 160
SYSTEM_SLOT = "{system}"
_ASK_USAGE = StreamOptions(include_usage=True)  # shared: a request's fields are not changed


class MeteredModel:
    def __init__(
        self,
        model: ServedModel,
        prices: Mapping[str, Price | None],
        cache: caching.ResponseCache | None,
        limiter: Limiter,
    ) -> None:
        self.model = model
        self.name = model.name
        self.prices = prices  # by deployment id
        self.cache = cache
        self.limiter = limiter

    # -- what a provider offers, passed through ------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.model.ready

    def card(self) -> JSONObject:
        return self.model.card()

    async def count_tokens(self, request: ChatCompletionRequest) -> int:
        return await self.model.count_tokens(self._prepared(request, current_trace()))

    async def tokenize(self, request: TokenizeRequest) -> JSONObject:
        return await self.model.tokenize(request)

    async def detokenize(self, request: DetokenizeRequest) -> JSONObject:
        return await self.model.detokenize(request)

    # -- generations, counted ------------------------------------------------------------------

    async def chat(self, request: ChatCompletionRequest) -> JSONObject:
        trace = current_trace()
        opted_in = _opted_in(request)
        request = self._prepared(request, trace)
        key = self._cache_key(request, opted_in, trace)
        if key is not None and self.cache is not None:
            cached = await self.cache.get(key)
            if cached is not None:
                self._hit(trace, cached)
                return cached
        reply = await self._counted(trace, request, self.model.chat(request))
        if key is not None and self.cache is not None:
            await self.cache.put(key, reply)
        return reply

    def chat_stream(self, request: ChatCompletionRequest) -> ChunkStream:
        trace = current_trace()
        opted_in = _opted_in(request)
        wants_usage = request.wants_usage_in_stream
        request = self._prepared(request, trace)
        key = self._cache_key(request, opted_in, trace)
        if key is None:  # the common case, with no layer between the client and the model
            source = self.model.chat_stream(_asking_usage(request))
            return self._counted_stream(trace, request, source, wants_usage, None)
        return self._cached_stream(trace, request, wants_usage, key)

    async def _cached_stream(
        self, trace: Trace, request: ChatCompletionRequest, wants_usage: bool, key: str
    ) -> ChunkStream:
        assert self.cache is not None
        cached = await self.cache.get(key)
        if cached is not None:
            self._hit(trace, cached)
            yield replay(cached, wants_usage)
            return
        folded = ChatAccumulator()
        source = self.model.chat_stream(_asking_usage(request))
        stream = self._counted_stream(trace, request, source, wants_usage, folded)
        try:
            async for batch in stream:
                yield batch
        finally:
            await stream.aclose()
        await self.cache.put(key, folded.result())

    async def completion(self, request: CompletionRequest) -> JSONObject:
        trace = current_trace()
        _no_system_prompt(trace.key)
        return await self._counted(trace, request, self.model.completion(request))

    def completion_stream(self, request: CompletionRequest) -> ChunkStream:
        trace = current_trace()
        _no_system_prompt(trace.key)
        source = self.model.completion_stream(_asking_usage(request))
        return self._counted_stream(trace, request, source, request.wants_usage_in_stream, None)

    async def embeddings(self, request: EmbeddingRequest) -> JSONObject:
        trace = current_trace()
        return await self._counted(trace, request, self.model.embeddings(request))

    # -- inside --------------------------------------------------------------------------------

    def _prepared(self, request: ChatCompletionRequest, trace: Trace) -> ChatCompletionRequest:
        """The request as it goes upstream: with the key's system prompt, without the
        gateway's own ``cache`` field."""
        trace.model = self.name
        key = trace.key
        extra = request.model_extra or {}
        if (key is None or key.system_prompt is None) and "cache" not in extra:
            return request
        if "cache" in extra:  # the gateway's own field: the bytes the client sent are no use
            request = request.model_copy()
            assert request.model_extra is not None
            del request.model_extra["cache"]
        if key is not None and key.system_prompt is not None:
            messages, injected = _with_system_prompt(request.messages, key.system_prompt)
            request = request.with_fields(messages=messages)
            trace.injected.append(injected)
        return request

    def _cache_key(
        self, request: ChatCompletionRequest, opted_in: bool, trace: Trace
    ) -> str | None:
        if self.cache is None or not caching.wanted(request, opted_in):
            return None
        trace.cache = "miss"
        return f"{self.name}:{caching.key_of(request)}"

    def _hit(self, trace: Trace, reply: JSONObject) -> None:
        trace.cache = "hit"
        usage = _usage(reply.get("usage"))
        trace.usage = usage
        price = next((p for p in self.prices.values() if p is not None), None)
        trace.saved = price.cost(usage) if usage is not None and price is not None else 0.0

    async def _counted(self, trace: Trace, request: Any, call: Any) -> JSONObject:
        try:
            reply: JSONObject = await call
        except asyncio.CancelledError:  # the client left: the prompt was likely paid for
            await self._settle(trace, request, None, lambda: 0)
            raise
        await self._settle(trace, request, reply.get("usage"), lambda: len(_reply_text(reply)))
        return reply

    async def _counted_stream(
        self,
        trace: Trace,
        request: Any,
        source: ChunkStream,
        wants_usage: bool,
        folded: ChatAccumulator | None,
    ) -> ChunkStream:
        reported: JSONObject | None = None
        chars = 0
        try:
            async for batch in source:
                if isinstance(batch, Relayed) and trace.first_token is not None:
                    # Relayed bytes, past the first token: the usage is looked for, and the
                    # text measured, in the bytes, at C speed, rather than chunk by chunk.
                    chars += max(0, len(batch.wire) - _FRAME * len(batch))
                    if _USAGE in batch.wire:
                        reported = next((c["usage"] for c in batch if c.get("usage")), reported)
                else:
                    for chunk in batch:
                        if chunk.get("usage"):
                            reported = chunk["usage"]
                        for choice in chunk.get("choices") or ():
                            delta = choice.get("delta") or {}
                            text = delta.get("content") or choice.get("text")
                            if text:
                                chars += len(text)
                                if trace.first_token is None:
                                    trace.first_token = trace.elapsed()
                if folded is not None:
                    for chunk in batch:
                        folded.add(chunk)
                yield batch if wants_usage else _without_usage(batch)
        finally:
            await source.aclose()
            await self._settle(trace, request, reported, lambda: chars)

    async def _settle(
        self,
        trace: Trace,
        request: Any,
        reported: JSONObject | None,
        answer_chars: Callable[[], int],
    ) -> None:
        """Record the usage and cost of an answer in ``trace``, and charge its key's tokens.
        Counts no backend reported are estimated from the prompt's and the answer's length."""
        usage = _usage(reported)
        if usage is None:
            usage = Usage(
                prompt_tokens=_estimate(len(_prompt_text(request))),
                completion_tokens=_estimate(answer_chars()),
                counted_by="estimate",
            )
        price = self.prices.get(trace.deployment or "")
        if price is not None:
            trace.cost += price.cost(usage)
        # A request that asked more than once (structured output's repairs) used them all.
        trace.usage = usage if trace.usage is None else trace.usage.plus(usage)
        key = trace.key
        if key is not None and key.tpm is not None:
            await self.limiter.charge(key, usage.total_tokens)


def _no_system_prompt(key: VirtualKey | None) -> None:
    if key is not None and key.system_prompt is not None:
        raise PermissionDenied(
            "This key puts a system prompt before every request, which a legacy "
            "completion cannot carry: use /v1/chat/completions.",
            code="system_prompt_required",
        )


def _opted_in(request: ChatCompletionRequest) -> bool:
    return (request.model_extra or {}).get("cache") is True


def _asking_usage(request: Any) -> Any:
    """The request with usage asked for, when it streams without asking."""
    if request.wants_usage_in_stream:
        return request
    return request.with_fields(stream_options=_ASK_USAGE)


def _without_usage(batch: list[JSONObject]) -> list[JSONObject]:
    """A batch as a client that did not ask for usage gets it."""
    if isinstance(batch, Relayed):
        cut = _cut_usage(batch)
        if cut is not None:
            return cut
    if not any(chunk.get("usage") for chunk in batch):
        return batch
    return [
        {k: v for k, v in chunk.items() if k != "usage"}
        for chunk in batch
        if chunk.get("choices") or not chunk.get("usage")
    ]


def _cut_usage(batch: Relayed) -> Relayed | None:
    """A relayed batch without its usage, cut from its bytes as they are, or None when its
    usage is not where OpenAI puts it: as nulls on every chunk once usage is asked for,
    and in one last event with no choices. The chunks keep their nulls, as a null is no
    usage; the bytes hold one event per chunk, with no blank line inside one."""
    wire = batch.wire
    first = wire.find(_USAGE)
    if first < 0:  # most batches: this is called for each, so it is kept short
        return batch
    start = wire.rfind(b"\n\n", 0, len(wire) - 2) + 2  # of the last event; 1 if only one
    if first < start and _reports(wire, 0, start):
        return None  # a usage before the last event
    reports = _reports(wire, start, len(wire))
    if reports:
        if reports > 1 or batch[-1].get("choices"):
            return None
        batch = Relayed(batch[:-1], wire[:start] if start > 1 else b"")
    if first < start:  # the nulls
        for null in _NULLS:
            if null in batch.wire:
                batch = Relayed(batch, batch.wire.replace(b"," + null, b""))
    return batch


def _reports(wire: bytes, start: int, end: int) -> int:
    """How many usages in ``wire[start:end]`` are not null."""
    compact, spaced = _NULLS
    nulls = wire.count(compact, start, end) + wire.count(spaced, start, end)
    return wire.count(_USAGE, start, end) - nulls


def _usage(reported: JSONObject | None) -> Usage | None:
    if not reported or not isinstance(reported, dict):
        return None
    prompt = reported.get("prompt_tokens")
    if not isinstance(prompt, int):
        return None
    details = reported.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=int(reported.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        counted_by="reported",
    )


def _estimate(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def _prompt_text(request: Any) -> str:
    if isinstance(request, ChatCompletionRequest):
        return "\n".join(message.text() for message in request.messages)
    prompt = getattr(request, "prompt", None) or getattr(request, "input", None)
    return prompt if isinstance(prompt, str) else str(prompt or "")


def _reply_text(reply: JSONObject) -> str:
    parts = []
    for choice in reply.get("choices") or ():
        message = choice.get("message") or {}
        parts.append(message.get("content") or choice.get("text") or "")
    return "".join(parts)


def _with_system_prompt(messages: list[Message], prompt: str) -> tuple[list[Message], str]:
    """``messages`` with ``prompt`` first; with a ``{system}`` slot, the client's own system
    messages fill it rather than following it."""
    if SYSTEM_SLOT not in prompt:
        return [Message(role="system", content=prompt), *messages], prompt
    own = [m for m in messages if m.role in ("system", "developer")]
    rest = [m for m in messages if m.role not in ("system", "developer")]
    text = prompt.replace(SYSTEM_SLOT, "\n".join(m.text() for m in own))
    return [Message(role="system", content=text), *rest], text
