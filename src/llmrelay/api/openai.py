"""The OpenAI-compatible surface: chat, legacy completions, embeddings and models."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from .. import structured
from ..errors import ModelNotFound
from ..gateway import Gateway
from ..schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, JSONObject
from ..streaming import EventStreamResponse, run_until_disconnect
from .deps import json_response, parse_body
from .routing import endpoint

TAG = "OpenAI"
log = logging.getLogger(__name__)


@endpoint(
    "POST",
    "/v1/chat/completions",
    TAG,
    body=ChatCompletionRequest,
    stream=True,
    access="metered",
)
async def chat_completions(request: Request, gateway: Gateway) -> Response:
    """Create a chat completion, whole or streamed as server-sent events."""
    body = await parse_body(request, ChatCompletionRequest)
    provider = gateway.resolve(body.model)
    if body.stream:
        return EventStreamResponse(provider.chat_stream(body))
    if structured.strict(body):
        guaranteed = structured.answer(
            body, provider.chat, gateway.config.jobs.max_attempts, _attempted
        )
        reply, _ = await run_until_disconnect(guaranteed, request.receive)
        return json_response(reply)
    return json_response(await run_until_disconnect(provider.chat(body), request.receive))


def _attempted(attempt: JSONObject) -> None:
    if attempt.get("errors"):
        log.info("structured output, attempt %(attempt)d: %(outcome)s: %(errors)s", attempt)


@endpoint("POST", "/v1/completions", TAG, body=CompletionRequest, stream=True, access="metered")
async def completions(request: Request, gateway: Gateway) -> Response:
    """Create a legacy text completion, whole or streamed."""
    body = await parse_body(request, CompletionRequest)
    provider = gateway.resolve(body.model)
    if body.stream:
        return EventStreamResponse(provider.completion_stream(body))
    return json_response(await run_until_disconnect(provider.completion(body), request.receive))


@endpoint("POST", "/v1/embeddings", TAG, body=EmbeddingRequest, access="metered")
async def embeddings(request: Request, gateway: Gateway) -> Response:
    """Create embeddings, with models whose upstream can embed."""
    body = await parse_body(request, EmbeddingRequest)
    provider = gateway.resolve(body.model)
    return json_response(await run_until_disconnect(provider.embeddings(body), request.receive))


@endpoint("GET", "/v1/models", TAG)
async def list_models(request: Request, gateway: Gateway) -> Response:
    """List the configured models: those the calling key may use."""
    cards = [served.card() for name, served in gateway.models.items() if gateway.allowed(name)]
    return json_response({"object": "list", "data": cards})


@endpoint("GET", "/v1/models/{model:path}", TAG)
async def get_model(request: Request, gateway: Gateway) -> Response:
    """Describe one configured model."""
    model = request.path_params["model"]
    served = gateway.models.get(model)
    if served is None or not gateway.allowed(model):
        raise ModelNotFound(model)
    return json_response(served.card())


ENDPOINTS = [chat_completions, completions, embeddings, list_models, get_model]
