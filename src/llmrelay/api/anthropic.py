"""The Anthropic-compatible surface: ``POST /v1/messages`` and its token counter, served by
any configured model."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .. import inbound_anthropic
from ..gateway import Gateway
from ..schemas.messages import CountTokensRequest, MessagesRequest
from ..streaming import EventStreamResponse, run_until_disconnect
from .deps import json_response, parse_body
from .routing import endpoint

TAG = "Anthropic"


@endpoint("POST", "/v1/messages", TAG, body=MessagesRequest, stream=True, access="metered")
async def messages(request: Request, gateway: Gateway) -> Response:
    """Create a message in Anthropic's format, whole or streamed as Anthropic's events."""
    body = await parse_body(request, MessagesRequest)
    provider = gateway.resolve(body.model)
    chat = inbound_anthropic.chat_request(body)
    if chat.stream:
        events = inbound_anthropic.Events(body.model)
        return EventStreamResponse(provider.chat_stream(chat), events)
    reply = await run_until_disconnect(provider.chat(chat), request.receive)
    return json_response(inbound_anthropic.message(reply, body.model))


@endpoint("POST", "/v1/messages/count_tokens", TAG, body=CountTokensRequest)
async def count_tokens(request: Request, gateway: Gateway) -> Response:
    """Count a request's input tokens; exact for models with a tokenizer in the gateway."""
    body = await parse_body(request, CountTokensRequest)
    provider = gateway.resolve(body.model)
    chat = inbound_anthropic.chat_request(
        MessagesRequest.model_validate({**body.model_dump(exclude_unset=True), "max_tokens": 1})
    )
    return json_response({"input_tokens": await provider.count_tokens(chat)})


ENDPOINTS = [messages, count_tokens]
