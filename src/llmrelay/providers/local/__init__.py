"""The embedded llama.cpp model."""

from .provider import LocalProvider, LocalSpec

__all__ = ["LocalProvider", "LocalSpec"]
