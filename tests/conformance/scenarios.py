"""The scenarios of the matrix. Each sends one or more ``Ask``s through a client to a backend
and checks the answers. A fake backend's answers are known exactly (``fakes.scenario``); the
embedded model's are not, so for it the checks are of shape and validity."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

import jsonschema

from ..fakes.scenario import (
    COMPLETION_TOKENS,
    MIDSTREAM_MESSAGE,
    MIDSTREAM_PIECES,
    PROMPT_TOKENS,
    TOOL_ARGUMENTS,
    View,
    summary,
)
from .backends import Backend
from .clients import AnthropicSDK, Client
from .model import Answer, Ask, Assistant, Failed, ToolResult, User

# A real 1x1 PNG.
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8Dw"
    "HwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
QUESTION = "What is the weather in Paris?"
RESULT = "18C and sunny"
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 16},
        "country": {"type": "string", "maxLength": 16},
    },
    "required": ["city", "country"],
}


def expect_failure(client: Client, model: str, ask: Ask) -> Failed:
    try:
        answer = client.ask(model, ask)
    except Failed as failed:
        return failed
    raise AssertionError(f"expected an error, got {answer}")


def check_text(answer: Answer, backend: Backend, expected: str) -> None:
    """A text answer: exactly ``expected`` from a fake; some text that ended well from the model."""
    assert answer.calls == []
    if backend.faked:
        assert (answer.text, answer.finish) == (expected, "stop")
    else:
        assert answer.text.strip() and answer.finish in ("stop", "length")


def check_usage(answer: Answer, backend: Backend) -> None:
    assert answer.usage is not None
    if backend.faked:
        assert answer.usage == (PROMPT_TOKENS, COMPLETION_TOKENS)
    else:
        assert answer.usage[0] > 0 and answer.usage[1] > 0


def check_arguments(arguments: str, backend: Backend) -> None:
    parsed = json.loads(arguments)
    assert parsed == TOOL_ARGUMENTS if backend.faked else isinstance(parsed, dict)


# -- the scenarios ---------------------------------------------------------------------------


def plain(client: Client, backend: Backend) -> None:
    answer = client.ask(backend.model(), Ask([User("Name three colours.")]))
    check_text(answer, backend, summary(View(texts=["Name three colours."])))
    check_usage(answer, backend)


def streamed(client: Client, backend: Backend) -> None:
    ask = Ask([User("Name three colours.")])
    whole = client.ask(backend.model(), ask)
    answer = client.ask(backend.model(), replace(ask, stream=True))
    check_text(answer, backend, summary(View(texts=["Name three colours."])))
    assert (answer.text, answer.finish) == (whole.text, whole.finish)
    if not isinstance(client, AnthropicSDK):  # Anthropic streams always carry usage
        assert answer.usage_reports == 0, "no usage unless the client asks for it"


def system_multi_turn(client: Client, backend: Backend) -> None:
    turns = [User("Hi"), Assistant("Hello"), User("Again")]
    answer = client.ask(backend.model(), Ask(turns, system="Be brief"))
    check_text(answer, backend, summary(View(system=["Be brief"], texts=["Hi", "Hello", "Again"])))


def tool_round_trip(client: Client, backend: Backend) -> None:
    ask = Ask([User(QUESTION)], tools=["get_weather"], tool_choice=backend.calling_choice)
    first = client.ask(backend.model(), ask)
    assert first.finish == "tool_calls"
    assert [call.name for call in first.calls] == ["get_weather"]
    check_arguments(first.calls[0].arguments, backend)
    call = first.calls[0]
    turns = [*ask.messages, Assistant(calls=[call]), ToolResult(call, RESULT)]
    second = client.ask(backend.model(), replace(ask, messages=turns, tool_choice="none"))
    check_text(second, backend, summary(View(texts=[QUESTION], results=[RESULT])))


def parallel_tool_calls(client: Client, backend: Backend) -> None:
    ask = Ask(
        [User(QUESTION)], tools=["get_weather", "get_time"], tool_choice="auto", parallel=True
    )
    answer = client.ask(backend.model(), replace(ask, stream=True))
    assert (answer.text, answer.finish) == ("", "tool_calls")
    assert [call.name for call in answer.calls] == ["get_weather", "get_time"]
    for call in answer.calls:
        check_arguments(call.arguments, backend)
    whole = client.ask(backend.model(), ask)
    assert whole.finish == answer.finish
    assert [(c.name, json.loads(c.arguments)) for c in whole.calls] == [
        (c.name, json.loads(c.arguments)) for c in answer.calls
    ]


def forced_tool(client: Client, backend: Backend) -> None:
    ask = Ask([User(QUESTION)], tools=["get_weather", "get_time"], tool_choice="get_time")
    for answer in (
        client.ask(backend.model(), ask),
        client.ask(backend.model(), replace(ask, stream=True)),
    ):
        assert answer.finish == "tool_calls"
        assert [call.name for call in answer.calls] == ["get_time"]
        check_arguments(answer.calls[0].arguments, backend)


def json_schema(client: Client, backend: Backend) -> None:
    ask = Ask([User("Where is the Eiffel Tower? Answer in JSON.")], schema=SCHEMA, max_tokens=64)
    answer = client.ask(backend.model(), ask)
    assert answer.calls == [] and answer.finish == "stop"
    if backend.faked:
        assert json.loads(answer.text) == {"keys": ["city", "country"]}
    else:
        jsonschema.validate(json.loads(answer.text), SCHEMA)


def image(client: Client, backend: Backend) -> None:
    answer = client.ask(backend.model(), Ask([User("What is in this picture?", image=PNG)]))
    check_text(answer, backend, summary(View(texts=["What is in this picture?"], images=1)))


def usage_in_stream(client: Client, backend: Backend) -> None:
    ask = Ask([User("Name three colours.")], stream=True, usage=True)
    answer = client.ask(backend.model(), ask)
    assert answer.usage_reports == 1, "usage arrives once, never doubled"
    check_usage(answer, backend)
    whole = client.ask(backend.model(), replace(ask, stream=False))
    assert answer.usage == whole.usage


def upstream_4xx(client: Client, backend: Backend) -> None:
    # The embedded model's own 4xx: a prompt longer than its context window.
    ask = Ask([User("Hi" if backend.faked else "word " * 3000)])
    model = backend.model("400" if backend.faked else "")
    for stream in (False, True):
        failed = expect_failure(client, model, replace(ask, stream=stream))
        assert (failed.status, failed.kind) == (400, "invalid_request_error"), failed
        assert failed.message


def upstream_429(client: Client, backend: Backend) -> None:
    for stream in (False, True):
        failed = expect_failure(client, backend.model("429"), Ask([User("Hi")], stream=stream))
        assert failed.status == 429 and failed.kind and failed.message, failed
        assert failed.retry_after == backend.retry_after


def midstream_error(client: Client, backend: Backend) -> None:
    ask = Ask([User("Hi")], stream=True)
    failed = expect_failure(client, backend.model("midstream"), ask)
    assert failed.status == 200, "the error arrives after the answer began"
    assert failed.partial == "".join(MIDSTREAM_PIECES)
    assert MIDSTREAM_MESSAGE in failed.message


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Callable[[Client, Backend], None]


SCENARIOS = [
    Scenario("plain", "plain text", plain),
    Scenario("stream", "streamed text (reassembles to the whole answer)", streamed),
    Scenario("system_multi_turn", "system prompt and multi-turn", system_multi_turn),
    Scenario("tool_round_trip", "tool call round trip", tool_round_trip),
    Scenario("parallel_tools", "streamed parallel tool calls (2)", parallel_tool_calls),
    Scenario("forced_tool", "tool_choice forcing a named tool", forced_tool),
    Scenario("json_schema", "json_schema output", json_schema),
    Scenario("image", "image input", image),
    Scenario("usage_in_stream", "usage in the stream", usage_in_stream),
    Scenario("upstream_4xx", "upstream 4xx", upstream_4xx),
    Scenario("upstream_429", "upstream 429", upstream_429),
    Scenario("midstream_error", "error mid-stream", midstream_error),
]

# Cells a backend cannot serve, whatever the client: (backend, scenario) -> (the request field
# the 400 names, why).
UNSUPPORTED = {
    ("ollama", "forced_tool"): (
        "tool_choice",
        "Ollama has no tool_choice: nothing can force a call",
    ),
    ("local", "parallel_tools"): (
        "parallel_tool_calls",
        "the embedded model makes one call per answer",
    ),
    ("local", "image"): ("image_url", "the embedded model takes text only"),
}
# Cells with nothing to test: (backend, scenario) -> why.
NOT_APPLICABLE = {
    ("local", "upstream_429"): "the embedded model has no upstream to refuse it",
    ("local", "midstream_error"): "the embedded model has no upstream to fail it",
}
