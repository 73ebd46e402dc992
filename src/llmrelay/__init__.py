"""llmrelay: an LLM gateway that speaks the OpenAI wire format."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llmrelay")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
