"""Provider adapters, by the name a config's ``provider:`` key uses.

Adding a provider is one module plus one line here; a test checks that every
module in this package is registered.
"""

from .anthropic import AnthropicProvider
from .base import ChunkStream, ModelSpec, Provider
from .cohere import CohereProvider
from .gemini import GeminiProvider
from .local import LocalProvider
from .ollama import OllamaProvider
from .openai import PRESETS, OpenAIProvider

PROVIDERS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    **PRESETS,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "cohere": CohereProvider,
    "ollama": OllamaProvider,
    "local": LocalProvider,
}

__all__ = ["PROVIDERS", "ChunkStream", "ModelSpec", "Provider"]
