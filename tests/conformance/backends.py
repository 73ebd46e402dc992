"""The six backends of the matrix: five fake upstreams, each speaking its provider's wire
format, and the model embedded in the gateway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..fakes.anthropic_upstream import FakeAnthropicUpstream
from ..fakes.cohere_upstream import FakeCohereUpstream
from ..fakes.gemini_upstream import FakeGeminiUpstream
from ..fakes.ollama_upstream import FakeOllamaUpstream
from ..fakes.openai_chat import FakeOpenAIChat
from ..fakes.server import FakeServer

# A gateway model per failure the fakes can act out, named "<backend>-<failure>".
FAILURES = {
    "": "chat-model",
    "400": "error-400",
    "429": "error-429",
    "midstream": "midstream-error",
}


@dataclass(frozen=True)
class Backend:
    name: str
    provider: str
    fake: type[FakeServer] | None = None  # None: the embedded model
    # The path under the fake's root that the provider's SDK takes as its base URL.
    root_path: str = ""
    # The tool_choice that gets a tool called: the fakes call tools whenever they may, but a
    # small base model calls one only when forced.
    calling_choice: str = "auto"
    # The Retry-After a 429 from the fake carries through to the client.
    retry_after: str | None = "7"

    @property
    def faked(self) -> bool:
        return self.fake is not None

    def model(self, failure: str = "") -> str:
        return f"{self.name}-{failure}" if failure else self.name

    def entries(self, server: FakeServer | None) -> list[dict[str, Any]]:
        """This backend's models in the gateway's config."""
        if server is None:
            return [{"name": self.name, "provider": "local", "n_ctx": 2048, "temperature": 0}]
        return [
            {
                "name": self.model(failure),
                "provider": self.provider,
                "model": upstream,
                "base_url": server.root + self.root_path,
                "api_key": "sk-fake-upstream",
            }
            for failure, upstream in FAILURES.items()
        ]


BACKENDS = [
    Backend("openai-compatible", "openai", FakeOpenAIChat, root_path="/v1"),
    Backend("anthropic", "anthropic", FakeAnthropicUpstream),
    Backend("gemini", "gemini", FakeGeminiUpstream),
    Backend("cohere", "cohere", FakeCohereUpstream),
    Backend("ollama", "ollama", FakeOllamaUpstream, retry_after=None),
    Backend("local", "local", calling_choice="required"),
]
