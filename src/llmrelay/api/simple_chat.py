"""The simple question-and-answer API: ``{question, system?}`` in, an answer out, whole or streamed.

Streamed answers are SSE events ``data: {"delta": "..."}`` ending with
``data: [DONE]``; the GET form serves browser ``EventSource`` clients.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidRequest
from ..gateway import Gateway
from ..schemas import ChatCompletionRequest, JSONObject, SimpleChatRequest
from ..schemas.chat import Message
from ..streaming import EventStreamResponse, Framing, run_until_disconnect
from .deps import json_response, parse_body
from .routing import QueryParam, endpoint

TAG = "Simple chat"


def _chat_request(body: SimpleChatRequest, stream: bool) -> ChatCompletionRequest:
    messages = [Message(role="user", content=body.question)]
    if body.system:
        messages.insert(0, Message(role="system", content=body.system))
    return ChatCompletionRequest(model=body.model, messages=messages, stream=stream)


@endpoint("POST", "/chat", TAG, body=SimpleChatRequest, access="metered")
async def chat(request: Request, gateway: Gateway) -> Response:
    """Answer a question: ``{"answer", "model"}``."""
    body = await parse_body(request, SimpleChatRequest)
    provider = gateway.resolve(body.model)
    reply = await run_until_disconnect(provider.chat(_chat_request(body, False)), request.receive)
    message = reply["choices"][0]["message"]
    return json_response({"answer": message.get("content") or "", "model": provider.name})


@endpoint("POST", "/chat/stream", TAG, body=SimpleChatRequest, stream=True, access="metered")
async def chat_stream(request: Request, gateway: Gateway) -> Response:
    """Answer a question as a stream of ``data: {"delta": ...}`` events, then ``[DONE]``."""
    body = await parse_body(request, SimpleChatRequest)
    return _stream(gateway, body)


@endpoint(
    "GET",
    "/chat/stream",
    TAG,
    stream=True,
    access="metered",
    query=[
        QueryParam("question", "The user's question.", required=True),
        QueryParam("system", "An optional system prompt."),
        QueryParam("model", "A configured model; the default if omitted."),
    ],
)
async def chat_stream_get(request: Request, gateway: Gateway) -> Response:
    """The same stream for browser ``EventSource`` clients, which can only GET."""
    query = request.query_params
    question = query.get("question", "")
    if not question.strip():
        raise InvalidRequest("'question' is required and must not be empty.", param="question")
    body = SimpleChatRequest(
        question=question, system=query.get("system"), model=query.get("model")
    )
    return _stream(gateway, body)


def _stream(gateway: Gateway, body: SimpleChatRequest) -> Response:
    provider = gateway.resolve(body.model)
    return EventStreamResponse(provider.chat_stream(_chat_request(body, True)), _Deltas())


class _Deltas(Framing):
    """Text deltas as ``data: {"delta": ...}`` events, closed with ``[DONE]``."""

    def batch(self, batch: list[JSONObject]) -> bytes:
        text = "".join(
            choice["delta"].get("content") or ""
            for chunk in batch
            for choice in chunk.get("choices") or ()
        )
        return b"data: " + orjson.dumps({"delta": text}) + b"\n\n" if text else b""


ENDPOINTS = [chat, chat_stream, chat_stream_get]
