"""Reading an OpenAI chat request in the pieces every translating adapter needs: the
system prompt apart from the turns, content as parts, tool calls with their arguments
decoded, the tool choice and the JSON schema asked for."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InvalidRequest, UnsupportedParameter
from ..schemas import ChatCompletionRequest, JSONObject, Message
from ..schemas.chat import (
    ContentPart,
    FunctionDefinition,
    FunctionTool,
    NamedToolChoice,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
    TextPart,
    ToolCall,
)
from ..schemas.common import json_object

SYSTEM_ROLES = ("system", "developer")


def split_system(request: ChatCompletionRequest) -> tuple[list[str], list[Message]]:
    """The system and developer messages' texts, and the other messages in order."""
    system = [m.text() for m in request.messages if m.role in SYSTEM_ROLES]
    turns = [m for m in request.messages if m.role not in SYSTEM_ROLES]
    if not turns:
        raise InvalidRequest("'messages' must hold at least one message besides system ones.")
    return system, turns


def alternating(turns: Iterable[tuple[str, list[JSONObject]]], key: str) -> list[JSONObject]:
    """``(role, items)`` turns as ``{"role", key: items}``, with a turn that has the same
    role as the one before merged into it, for formats whose roles must alternate (tool
    results there are user turns, so they merge with the user's next words)."""
    native: list[JSONObject] = []
    for role, items in turns:
        if native and native[-1]["role"] == role:
            native[-1][key].extend(items)
        else:
            native.append({"role": role, key: items})
    return native


def parts(message: Message) -> list[ContentPart]:
    if isinstance(message.content, str):
        return [TextPart(type="text", text=message.content)] if message.content else []
    return list(message.content or ())


def arguments(call: ToolCall) -> JSONObject:
    """A tool call's arguments as the object that providers other than OpenAI take."""
    value = json_object(call.function.arguments or "{}")
    if value is None:
        raise InvalidRequest(
            f"The arguments of tool call '{call.id}' must be a JSON object.",
            param="messages",
        )
    return value


def tool_names(request: ChatCompletionRequest) -> dict[str, str]:
    """The function name of each tool call id in the history, for formats whose tool
    results name the function rather than the call."""
    return {
        call.id: call.function.name
        for message in request.messages
        for call in message.tool_calls or ()
    }


def functions(request: ChatCompletionRequest, where: str) -> list[FunctionDefinition]:
    tools = request.tools or []
    if any(not isinstance(tool, FunctionTool) for tool in tools):
        raise UnsupportedParameter("tools", f"{where} (only function tools are)")
    return [tool.function for tool in tools if isinstance(tool, FunctionTool)]


@dataclass(frozen=True)
class Choice:
    """``tool_choice`` read as one of: auto, none, required, or a named function."""

    mode: str
    name: str | None = None


def tool_choice(request: ChatCompletionRequest) -> Choice:
    choice = request.tool_choice
    if choice is None:
        return Choice("auto")
    if isinstance(choice, str):
        return Choice(choice)
    if isinstance(choice, NamedToolChoice):
        name = choice.function.name
        if not any(
            isinstance(t, FunctionTool) and t.function.name == name for t in request.tools or ()
        ):
            raise InvalidRequest(
                f"tool_choice names '{name}', which is not in 'tools'.", param="tool_choice"
            )
        return Choice("function", name)
    raise InvalidRequest("'tool_choice' must be none, auto, required or a named function.")


def json_schema(request: ChatCompletionRequest) -> JSONObject | None:
    """The schema of a json_schema response format; ``{}`` for json_object; None for text."""
    fmt = request.response_format
    if isinstance(fmt, ResponseFormatJSONSchema):
        return fmt.json_schema.schema_ or {"type": "object"}
    if isinstance(fmt, ResponseFormatJSONObject):
        return {}
    return None


def extras(request: ChatCompletionRequest, unsupported: frozenset[str]) -> JSONObject:
    """Fields the gateway does not know: they go to the upstream unchanged, except those
    the adapter cannot honour (which reach here only when the model drops them)."""
    return {k: v for k, v in (request.model_extra or {}).items() if k not in unsupported}
