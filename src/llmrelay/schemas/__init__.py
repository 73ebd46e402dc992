"""Canonical request schemas; responses travel as OpenAI-shaped dicts (``common.JSONObject``)."""

from .chat import ChatCompletionRequest, Message
from .common import JSONObject
from .completions import CompletionRequest
from .embeddings import EmbeddingRequest
from .simple_chat import SimpleChatRequest, SimpleChatResponse
from .tokenize import DetokenizeRequest, TokenizeRequest

__all__ = [
    "ChatCompletionRequest",
    "CompletionRequest",
    "DetokenizeRequest",
    "EmbeddingRequest",
    "JSONObject",
    "Message",
    "SimpleChatRequest",
    "SimpleChatResponse",
    "TokenizeRequest",
]
