"""Provider adapters, by the name a config's ``provider:`` key uses.

Adding a provider is one module plus one line here; a test checks that every
module in this package is registered.
"""

from .base import ChunkStream, ModelSpec, Provider
from .local import LocalProvider
from .openai import OpenAIProvider

PROVIDERS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "local": LocalProvider,
}

__all__ = ["PROVIDERS", "ChunkStream", "ModelSpec", "Provider"]
