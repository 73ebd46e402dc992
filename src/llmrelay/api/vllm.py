"""vLLM's extra endpoints: tokenize and detokenize with a model's own tokenizer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..schemas import DetokenizeRequest, TokenizeRequest
from .deps import GatewayDep, json_response, openapi_body, parse_body

router = APIRouter(tags=["vLLM"])


@router.post("/tokenize", openapi_extra=openapi_body(TokenizeRequest))
async def tokenize(request: Request, gateway: GatewayDep) -> Response:
    """Turn a prompt, or chat messages after the chat template, into token ids."""
    body = await parse_body(request, TokenizeRequest)
    return json_response(await gateway.resolve(body.model).tokenize(body))


@router.post("/detokenize", openapi_extra=openapi_body(DetokenizeRequest))
async def detokenize(request: Request, gateway: GatewayDep) -> Response:
    """Turn token ids back into text."""
    body = await parse_body(request, DetokenizeRequest)
    return json_response(await gateway.resolve(body.model).detokenize(body))
