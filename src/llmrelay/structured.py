"""The structured-output guarantee: an answer that asked for JSON is JSON that validates
against its schema (JSON Schema, draft 2020-12), or it is an error.

The model's own constrained output comes first: each provider adapter asks for
it natively. What still fails to parse is repaired with ``json_repair``; what
still fails the schema is sent back to the model with the validation errors,
a bounded number of times.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import json_repair
import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from .errors import InvalidRequest, UpstreamError
from .providers.canonical import json_schema
from .schemas import ChatCompletionRequest, JSONObject, Message
from .schemas.chat import ResponseFormatJSONSchema

# Errors shown to the model, and in the job, per attempt.
MAX_ERRORS = 8
_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(.*?)\n\s*```\s*$", re.S)

Ask = Callable[[ChatCompletionRequest], Awaitable[JSONObject]]


class InvalidStructuredOutput(UpstreamError):
    status = 502
    default_code = "invalid_structured_output"


@dataclass
class Checked:
    value: Any = None
    errors: list[str] = field(default_factory=list)
    repaired: bool = False

    @property
    def valid(self) -> bool:
        return not self.errors


def strict(request: ChatCompletionRequest) -> bool:
    """Whether the request asks for a strict JSON schema, which the gateway guarantees on
    whole replies too, outside of jobs."""
    fmt = request.response_format
    return isinstance(fmt, ResponseFormatJSONSchema) and bool(fmt.json_schema.strict)


def target(request: ChatCompletionRequest) -> Draft202012Validator | None:
    """The validator for the JSON the request asks for; None when it asks for text. A
    schema that is not valid JSON Schema is the client's error."""
    schema = json_schema(request)
    if schema is None:
        return None
    schema = schema or {"type": "object"}  # json_object: any object
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidRequest(
            f"The response_format schema is not valid JSON Schema: {exc.message}",
            param="response_format.json_schema.schema",
        ) from None
    return Draft202012Validator(schema)


def check(text: str | None, validator: Draft202012Validator) -> Checked:
    """Parse and validate ``text``, repairing it when it does not parse."""
    if not text:
        return Checked(errors=["The answer was empty."])
    try:
        value = orjson.loads(text)
        repaired = False
    except orjson.JSONDecodeError:
        value = _repaired(text)
        repaired = True
        if value is None:
            return Checked(errors=["The answer is not JSON, and could not be repaired."])
    errors = [
        f"at {error.json_path}: {error.message}"
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    ][:MAX_ERRORS]
    return Checked(value, errors, repaired)


def _repaired(text: str) -> Any:
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        value = json_repair.loads(text)
    except Exception:  # the library's own failures are many and undocumented
        return None
    # json_repair makes "" of text with no JSON in it at all.
    return None if value == "" else value


def reask(
    request: ChatCompletionRequest, text: str | None, errors: list[str]
) -> ChatCompletionRequest:
    """The request again, with the invalid answer and what was wrong with it."""
    feedback = (
        "Your answer was not valid JSON for the required schema:\n- "
        + "\n- ".join(errors)
        + "\nAnswer again with only the corrected JSON."
    )
    messages = [
        *request.messages,
        Message(role="assistant", content=text or ""),
        Message(role="user", content=feedback),
    ]
    return request.model_copy(update={"messages": messages})


async def answer(
    request: ChatCompletionRequest,
    ask: Ask,
    attempts: int,
    record: Callable[[JSONObject], None],
) -> tuple[JSONObject, Any]:
    """The model's reply to ``request`` and, when it asked for JSON, the parsed JSON, which
    is valid; every attempt goes to ``record``. Raises ``InvalidStructuredOutput`` when
    ``attempts`` answers were all invalid."""
    validator = target(request)
    current = request
    checked = Checked()
    for attempt in range(1, attempts + 1):
        reply = await ask(current)
        if validator is None:
            record({"attempt": attempt, "outcome": "answered"})
            return reply, None
        text = _text(reply)
        checked = check(text, validator)
        outcome = "invalid" if not checked.valid else "repaired" if checked.repaired else "valid"
        record({"attempt": attempt, "outcome": outcome, "errors": checked.errors})
        if checked.valid:
            if checked.repaired:
                _replace_text(reply, orjson.dumps(checked.value).decode())
            return reply, checked.value
        if _cut_off(reply):
            raise InvalidStructuredOutput(
                "The answer was cut off by max_tokens before its JSON was complete, and asking "
                "again would cut it off again; allow more tokens. The errors: "
                + "; ".join(checked.errors)
            )
        current = reask(current, text, checked.errors)
    raise InvalidStructuredOutput(
        f"The model gave no valid JSON for the schema in {attempts} attempts; the last "
        "errors: " + "; ".join(checked.errors)
    )


def _first(reply: JSONObject) -> JSONObject:
    choices = reply.get("choices") or [{}]
    return dict(choices[0])


def _text(reply: JSONObject) -> str | None:
    content = (_first(reply).get("message") or {}).get("content")
    return content if isinstance(content, str) else None


def _cut_off(reply: JSONObject) -> bool:
    return bool(_first(reply).get("finish_reason") == "length")


def _replace_text(reply: JSONObject, text: str) -> None:
    reply["choices"][0]["message"]["content"] = text
