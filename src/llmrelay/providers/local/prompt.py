"""Turning an OpenAI chat request into what a plain llama.cpp chat template can take.

Small local models have no system role, no tool role and no function calling
of their own. System text is folded into the first user turn (as Gemma's own
template does), tool results become user turns, and tools are offered in the
prompt with a grammar that makes a forced tool call always parse.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import InvalidRequest, UnsupportedParameter
from ...schemas.chat import (
    ChatCompletionRequest,
    FunctionTool,
    ImagePart,
    Message,
    NamedToolChoice,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
    TextPart,
)

WHERE = "the local model"


def chat_messages(request: ChatCompletionRequest) -> list[dict[str, str]]:
    """The request's messages as plain user/assistant turns."""
    system: list[str] = []
    turns: list[dict[str, str]] = []
    names = _tool_names_by_call(request.messages)
    for message in request.messages:
        _check_parts(message)
        if message.role in ("system", "developer"):
            system.append(message.text())
        elif message.role in ("tool", "function"):
            name = names.get(message.tool_call_id or "", message.name or "tool")
            turns.append({"role": "user", "content": f"Result of {name}: {message.text()}"})
        elif message.role == "assistant":
            text = message.text()
            for call in message.tool_calls or ():
                text += json.dumps(
                    {"name": call.function.name, "arguments": _loads(call.function.arguments)}
                )
            turns.append({"role": "assistant", "content": text})
        else:
            turns.append({"role": "user", "content": message.text()})
    tools = offered_tools(request)
    if tools:
        system.append(_tool_instructions(tools))
    if system:
        preamble = "\n\n".join(s for s in system if s)
        if turns and turns[0]["role"] == "user":
            turns[0] = {"role": "user", "content": f"{preamble}\n\n{turns[0]['content']}"}
        else:
            turns.insert(0, {"role": "user", "content": preamble})
    return turns


def offered_tools(request: ChatCompletionRequest) -> list[FunctionTool]:
    """The function tools the model may call, after ``tool_choice`` narrows them."""
    if not request.tools or request.tool_choice == "none":
        return []
    tools = []
    for tool in request.tools:
        if not isinstance(tool, FunctionTool):
            raise UnsupportedParameter("tools", WHERE + f" (tool type '{tool.type}')")
        tools.append(tool)
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        tools = [t for t in tools if t.function.name == choice.function.name]
        if not tools:
            raise InvalidRequest(
                f"tool_choice names '{choice.function.name}', which is not in 'tools'.",
                param="tool_choice",
            )
    elif choice not in (None, "auto", "required"):
        raise UnsupportedParameter("tool_choice", WHERE)
    if request.parallel_tool_calls and len(tools) > 1:
        # Asked for outright, parallel calls would be silently cut to one.
        raise UnsupportedParameter("parallel_tool_calls", WHERE + " (it makes one call per answer)")
    return tools


def tool_call_forced(request: ChatCompletionRequest) -> bool:
    return request.tool_choice == "required" or isinstance(request.tool_choice, NamedToolChoice)


def output_schema(request: ChatCompletionRequest) -> dict[str, Any] | None:
    """The JSON schema that constrains the output, or None when it is free text.

    A forced tool call constrains to the tools' call shape; ``json_object``
    constrains to any object (``{"type": "object"}``).
    """
    if tool_call_forced(request):
        calls = [_call_schema(t) for t in offered_tools(request)]
        return calls[0] if len(calls) == 1 else {"anyOf": calls}
    fmt = request.response_format
    if isinstance(fmt, ResponseFormatJSONSchema):
        return fmt.json_schema.schema_ or {"type": "object"}
    if isinstance(fmt, ResponseFormatJSONObject):
        return {"type": "object"}
    return None


def parse_tool_call(text: str, tools: list[FunctionTool]) -> tuple[str, str] | None:
    """``(name, arguments)`` when ``text`` is a call of one of ``tools``, else None."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("arguments"), dict):
        return None
    if data.get("name") not in {t.function.name for t in tools}:
        return None
    return data["name"], json.dumps(data["arguments"])


def _call_schema(tool: FunctionTool) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "name": {"const": tool.function.name},
            "arguments": tool.function.parameters or {"type": "object"},
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _tool_instructions(tools: list[FunctionTool]) -> str:
    listing = [
        {
            "name": t.function.name,
            "description": t.function.description or "",
            "parameters": t.function.parameters or {"type": "object"},
        }
        for t in tools
    ]
    return (
        "You can call these tools:\n"
        + json.dumps(listing)
        + '\nTo call a tool, answer with only a JSON object: {"name": <tool name>, '
        '"arguments": <object>}.'
    )


def _tool_names_by_call(messages: list[Message]) -> dict[str, str]:
    return {
        call.id: call.function.name for message in messages for call in message.tool_calls or ()
    }


def _check_parts(message: Message) -> None:
    if isinstance(message.content, str) or message.content is None:
        return
    for part in message.content:
        if isinstance(part, ImagePart):
            raise UnsupportedParameter("image_url", WHERE + " (it takes text only)")
        if not isinstance(part, TextPart) and part.type != "refusal":
            raise UnsupportedParameter(part.type, WHERE + " (it takes text only)")


def _loads(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments
