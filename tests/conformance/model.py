"""What a matrix cell sends and gets back, in terms that every client can express."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Call:
    id: str
    name: str
    arguments: str  # the JSON text, exactly as it was reassembled


@dataclass
class User:
    text: str
    image: str | None = None  # a data: URL


@dataclass
class Assistant:
    text: str | None = None
    calls: list[Call] = field(default_factory=list)


@dataclass
class ToolResult:
    call: Call
    text: str


Message = User | Assistant | ToolResult


@dataclass
class Ask:
    messages: list[Message]
    system: str | None = None
    tools: list[str] = field(default_factory=list)
    # "auto", "required", "none", or the name of the one tool to call.
    tool_choice: str | None = None
    parallel: bool | None = None
    schema: dict[str, Any] | None = None
    stream: bool = False
    usage: bool = False  # ask for usage in the stream
    max_tokens: int = 48


@dataclass
class Answer:
    text: str
    calls: list[Call]
    finish: str  # OpenAI's names: stop, length, tool_calls
    usage: tuple[int, int] | None  # prompt and completion tokens
    usage_reports: int = 0  # how many stream events carried usage


class Failed(Exception):
    """An error reply, before the answer began (``status`` is the HTTP status) or after it
    (``status`` is 200 and ``partial`` is the text that came first)."""

    def __init__(
        self,
        status: int,
        kind: str | None,
        message: str,
        param: str | None = None,
        retry_after: str | None = None,
        partial: str = "",
    ) -> None:
        super().__init__(f"{status} {kind}: {message}")
        self.status = status
        self.kind = kind
        self.message = message
        self.param = param
        self.retry_after = retry_after
        self.partial = partial
