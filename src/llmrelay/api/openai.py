"""The OpenAI-compatible surface: chat, legacy completions, embeddings and models."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..errors import ModelNotFound
from ..schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from ..streaming import run_until_disconnect
from .deps import GatewayDep, json_response, openapi_body, parse_body, stream_response

router = APIRouter(prefix="/v1", tags=["OpenAI"])


@router.post("/chat/completions", openapi_extra=openapi_body(ChatCompletionRequest))
async def chat_completions(request: Request, gateway: GatewayDep) -> Response:
    """Create a chat completion, whole or streamed as server-sent events."""
    body = await parse_body(request, ChatCompletionRequest)
    provider = gateway.resolve(body.model)
    if body.stream:
        return await stream_response(request, provider.chat_stream(body))
    return json_response(await run_until_disconnect(provider.chat(body), request.receive))


@router.post("/completions", openapi_extra=openapi_body(CompletionRequest))
async def completions(request: Request, gateway: GatewayDep) -> Response:
    """Create a legacy text completion, whole or streamed."""
    body = await parse_body(request, CompletionRequest)
    provider = gateway.resolve(body.model)
    if body.stream:
        return await stream_response(request, provider.completion_stream(body))
    return json_response(await run_until_disconnect(provider.completion(body), request.receive))


@router.post("/embeddings", openapi_extra=openapi_body(EmbeddingRequest))
async def embeddings(request: Request, gateway: GatewayDep) -> Response:
    """Create embeddings, with models whose upstream can embed."""
    body = await parse_body(request, EmbeddingRequest)
    provider = gateway.resolve(body.model)
    return json_response(await run_until_disconnect(provider.embeddings(body), request.receive))


@router.get("/models")
async def list_models(gateway: GatewayDep) -> Response:
    """List the configured models."""
    cards = [provider.card() for provider in gateway.providers.values()]
    return json_response({"object": "list", "data": cards})


@router.get("/models/{model:path}")
async def get_model(model: str, gateway: GatewayDep) -> Response:
    """Describe one configured model."""
    provider = gateway.providers.get(model)
    if provider is None:
        raise ModelNotFound(model)
    return json_response(provider.card())
