"""vLLM's extra endpoints: tokenize and detokenize with a model's own tokenizer."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..gateway import Gateway
from ..schemas import DetokenizeRequest, TokenizeRequest
from .deps import json_response, parse_body
from .routing import endpoint

TAG = "vLLM"


@endpoint("POST", "/tokenize", TAG, body=TokenizeRequest)
async def tokenize(request: Request, gateway: Gateway) -> Response:
    """Turn a prompt, or chat messages after the chat template, into token ids."""
    body = await parse_body(request, TokenizeRequest)
    return json_response(await gateway.resolve(body.model).tokenize(body))


@endpoint("POST", "/detokenize", TAG, body=DetokenizeRequest)
async def detokenize(request: Request, gateway: Gateway) -> Response:
    """Turn token ids back into text."""
    body = await parse_body(request, DetokenizeRequest)
    return json_response(await gateway.resolve(body.model).detokenize(body))


ENDPOINTS = [tokenize, detokenize]
