"""What every fake upstream answers, whatever its wire format.

Each fake reads its own native request into a ``View``, then answers with
``answer(view)``. The answer reflects what arrived, so a test that sends the
same OpenAI request to every backend through the gateway can check that the
translation carried each part across:

- with tools declared, no tool result yet and a tool choice other than none:
  one call per declared tool (the forced one only, when one is forced), each
  with the arguments ``{"city": "Paris"}``;
- with a JSON schema asked for: the JSON text ``{"keys": [<the schema's property names>]}``;
- otherwise the text ``summary(view)``.

Model names pick the failures, the same in every fake: ``error-<status>`` answers
with that status in the native error shape, and ``midstream-error`` sends two
pieces of text and then the format's own error-after-200.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TOOL_ARGUMENTS = {"city": "Paris"}
# How the arguments are cut when a format streams them in fragments.
ARGUMENT_FRAGMENTS = ['{"ci', 'ty": "Pa', 'ris"}']
PROMPT_TOKENS = 9
COMPLETION_TOKENS = 7
MIDSTREAM_PIECES = ["Hello", " there"]
MIDSTREAM_MESSAGE = "The model crashed."


@dataclass
class View:
    """A native request, read back into the parts every format has."""

    system: list[str] = field(default_factory=list)
    # The text of each user and assistant message, in order.
    texts: list[str] = field(default_factory=list)
    images: int = 0
    # The text of each tool result, in order.
    results: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    forced_tool: str | None = None
    tool_choice_none: bool = False
    schema_keys: list[str] | None = None


@dataclass
class ToolCall:
    name: str
    arguments: str = json.dumps(TOOL_ARGUMENTS)


def function_tool(name: str) -> dict[str, Any]:
    """An OpenAI function tool whose arguments are those the fakes call it with."""
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def summary(view: View) -> str:
    system = " ".join(view.system) or "-"
    texts = "/".join(view.texts) or "-"
    results = "/".join(view.results) or "-"
    return f"system={system}; texts={texts}; images={view.images}; results={results}"


def answer(view: View) -> str | list[ToolCall]:
    """The text, or the tool calls, that a fake answers ``view`` with."""
    if view.tools and not view.results and not view.tool_choice_none:
        names = [view.forced_tool] if view.forced_tool else view.tools
        return [ToolCall(name) for name in names]
    if view.schema_keys is not None:
        return json.dumps({"keys": view.schema_keys})
    return summary(view)


def pieces(text: str, size: int = 8) -> list[str]:
    """How a fake cuts a text to stream it."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
