"""OpenTelemetry: each request that reached a model becomes an inbound span, a routing span
and a span per upstream attempt, with the GenAI attributes, sent over OTLP to a real
collector on loopback; with no endpoint configured, the gateway's tracing is not even
loaded."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from .conftest import UPSTREAM_KEY, run_gateway
from .fakes.openai_upstream import FakeUpstream
from .fakes.otlp_collector import OTLPCollector

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def collector() -> Iterator[OTLPCollector]:
    with OTLPCollector() as fake:
        yield fake


def test_a_request_that_fell_back_is_a_tree_of_spans_with_genai_attributes(
    upstream: FakeUpstream, collector: OTLPCollector, tmp_path: Path
) -> None:
    upstream_entry = {"provider": "openai", "base_url": upstream.base_url, "api_key": UPSTREAM_KEY}
    config = {
        "otlp_endpoint": collector.root,
        "models": [
            {**upstream_entry, "name": "pair", "model": "error-500", "id": "broken",
             "fallbacks": ["backup"]},
            {**upstream_entry, "name": "backup", "model": "fake-model", "id": "working"},
        ],
    }  # fmt: skip
    with run_gateway(config, tmp_path) as gateway:
        client = openai.OpenAI(base_url=gateway.v1, api_key="unused", max_retries=0)
        reply = client.chat.completions.with_raw_response.create(
            model="pair",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"traceparent": f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"},
        )
        request_id = reply.headers["x-request-id"]
    # Closing the gateway sends the spans still held.
    ours = [s for s in collector.spans if s["trace_id"] == CLIENT_TRACE]
    by_name = {span["name"]: span for span in ours}
    inbound = by_name["POST /v1/chat/completions"]
    routing = by_name["route pair"]
    attempts = sorted((s for s in ours if s["name"] == "chat error-500" or
                       s["name"] == "chat fake-model"), key=lambda s: s["start"])  # fmt: skip
    assert inbound["service"] == "llmrelay"
    assert inbound["parent_id"] == "00f067aa0ba902b7"  # the client's span
    assert inbound["attributes"]["llmrelay.request_id"] == request_id
    assert inbound["attributes"]["http.response.status_code"] == 200
    assert routing["parent_id"] == inbound["span_id"]
    assert routing["attributes"]["llmrelay.attempts"] == 2
    assert [s["attributes"]["llmrelay.deployment"] for s in attempts] == ["broken", "working"]
    assert all(s["parent_id"] == routing["span_id"] for s in attempts)
    assert attempts[0]["error"] and not attempts[1]["error"]
    answered = attempts[1]["attributes"]
    assert answered["gen_ai.operation.name"] == "chat"
    assert answered["gen_ai.provider.name"] == "openai"
    assert answered["gen_ai.request.model"] == "fake-model"
    assert answered["gen_ai.usage.input_tokens"] == 9
    assert answered["gen_ai.usage.output_tokens"] == 7
    assert inbound["start"] <= attempts[0]["start"] <= attempts[1]["start"] <= inbound["end"]


def test_without_an_endpoint_tracing_is_not_loaded(tmp_path: Path) -> None:
    program = (
        "import sys, asyncio\n"
        "from llmrelay.app import running\n"
        "from llmrelay.config import load_config\n"
        "async def main():\n"
        "    async with running(load_config(None, {})):\n"
        "        pass\n"
        "asyncio.run(main())\n"
        "loaded = ('llmrelay.telemetry', 'opentelemetry.sdk.trace')\n"
        "print([m for m in loaded if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
