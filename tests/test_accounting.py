"""Usage accounting, cost, the response cache, metrics, the request inspector and the access
log, driven by the official SDKs against a real ``llmrelay serve`` process and fake upstreams.

Most tests share one gateway process (master key, ``log_content: true``, a memory cache and
config prices) and make their own virtual keys, so that each test's records, usage rows and
metric deltas are its own. The cache stores, the inspector without bodies and the database
records each get a gateway of their own.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import psycopg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from . import services
from .conftest import UPSTREAM_KEY, run_gateway, upstream_models
from .fakes.openai_upstream import ANSWER, STREAM_PIECES, FakeUpstream
from .services import free_port

MASTER_KEY = "master-7c1d9e2f4a6b8c0d1e3f"
# A provider key that does not look like one ("sk-..."), so that only the gateway's knowledge
# of its own secrets can keep it out of what it shows.
PLAIN_UPSTREAM_KEY = "upstream-token-51f0c2e9a7d3b8"
PRICES: dict[str, dict[str, float]] = {
    "fake-model": {"input": 2.0, "output": 10.0, "cached": 0.5},
    # "aliased" asks the upstream for fake-model: the upstream's id is looked up first.
    "aliased": {"input": 50.0, "output": 50.0},
    # "by-name" asks for an id no table prices: its served name's price applies.
    "by-name": {"input": 1.0, "output": 3.0},
    # Over the shipped table's gpt-4o.
    "gpt-4o": {"input": 7.0, "output": 9.0},
    "crlf": {"input": 1.0, "output": 1.0},
    # A model run by the gateway is free, whatever the config says.
    "local": {"input": 100.0, "output": 100.0},
}
PROMPT, COMPLETION = 9, 7  # what the fake upstream reports for every answer


def cost(model: str, prompt: int = PROMPT, completion: int = COMPLETION) -> float:
    price = PRICES[model]
    return (prompt * price["input"] + completion * price["output"]) / 1_000_000


FAKE_COST = cost("fake-model")
TABLE = json.loads(resources.files("llmrelay").joinpath("data/pricing.json").read_text())


@dataclass
class Relay:
    url: str
    log: Path

    @property
    def v1(self) -> str:
        return self.url + "/v1"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


def _served_models(base_url: str) -> list[dict[str, Any]]:
    def entry(name: str, upstream: str, key: str = UPSTREAM_KEY, **more: Any) -> dict[str, Any]:
        return {
            "name": name,
            "provider": "openai",
            "model": upstream,
            "base_url": base_url,
            "api_key": key,
            **more,
        }

    return [
        *upstream_models(base_url),
        entry("by-name", "unpriced-upstream"),
        entry("table-priced", "gpt-4o-mini"),
        entry("overridden", "gpt-4o"),
        entry("leaky-plain", "leaky-key", key=PLAIN_UPSTREAM_KEY),
        entry("retried", "error-500", retry={"attempts": 2, "initial_ms": 10}),
        {"name": "local", "provider": "local", "max_tokens": 16, "n_ctx": 2048},
    ]


@pytest.fixture(scope="module")
def relay(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """``llmrelay serve`` with a master key, bodies kept, a memory cache and config prices."""
    folder = tmp_path_factory.mktemp("relay")
    config = {
        "master_key": MASTER_KEY,
        "log_content": True,
        "log_format": "json",
        "cache": {"enabled": True, "store": "memory"},
        "pricing": PRICES,
        "retry": {"attempts": 1},
        "cooldown": {"failures": 1_000_000},
        "data_dir": str(folder / "data"),
        "default_model": "fake-model",
        "models": _served_models(fake.base_url),
    }
    path = folder / "llmrelay.yaml"
    path.write_text(yaml.safe_dump(config))
    log = folder / "llmrelay.log"
    port = free_port()
    process = services.llmrelay(path, log, port)
    try:
        yield Relay(f"http://127.0.0.1:{port}", log)
    finally:
        services.stop(process)


# -- helpers -----------------------------------------------------------------------------------


def _auth(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


def _new_key(relay: Relay, name: str, **fields: Any) -> tuple[str, str]:
    """A new virtual key: its id and its secret."""
    made = httpx.post(
        relay.url + "/admin/keys", json={"name": name, **fields}, headers=_auth(MASTER_KEY)
    )
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["key"]


def _client(url: str, key: str | None) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key or "unused", max_retries=0, timeout=30)


def _rid(label: str) -> str:
    return f"acct-{label}-{secrets.token_hex(4)}"


def _unique(label: str) -> str:
    return f"{label} {secrets.token_hex(6)}"


def _say(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _whole_and_streamed(client: openai.OpenAI, whole: str, streamed: str) -> None:
    """Ask once for a whole reply and once for a stream, with these request ids."""
    client.chat.completions.create(
        model="fake-model", messages=_say("Hi"), extra_headers={"x-request-id": whole}
    )
    list(
        client.chat.completions.create(
            model="fake-model",
            messages=_say("Hi"),
            stream=True,
            extra_headers={"x-request-id": streamed},
        )
    )


def _recorded(url: str, request_id: str, key: str | None = MASTER_KEY) -> dict[str, Any]:
    """A request's inspector record, once the gateway has recorded it (after its reply)."""
    deadline = time.monotonic() + 10
    while True:
        found = httpx.get(f"{url}/v1/requests/{request_id}", headers=_auth(key))
        if found.status_code == 200:
            detail: dict[str, Any] = found.json()
            return detail
        assert found.status_code == 404, found.text
        assert time.monotonic() < deadline, f"{request_id} was never recorded"
        time.sleep(0.05)


def _usage(url: str, key: str | None, **query: str) -> dict[str, Any]:
    report = httpx.get(url + "/v1/usage", params=query, headers=_auth(key))
    assert report.status_code == 200, report.text
    body: dict[str, Any] = report.json()
    return body


def _rows(report: dict[str, Any], key_id: str) -> list[dict[str, Any]]:
    return [row for row in report["data"] if row["key_id"] == key_id]


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def _around_today() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "start": (now - timedelta(days=1)).strftime("%Y-%m-%d"),
        "end": (now + timedelta(days=1)).strftime("%Y-%m-%d"),
    }


def _asked_with(fake: FakeUpstream, text: str) -> list[dict[str, Any]]:
    """The bodies of the requests the fake upstream got whose messages hold ``text``."""
    return [
        r.body
        for r in fake.requests
        if any(m.get("content") == text for m in r.body.get("messages") or ())
    ]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "llmrelay", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _assert_reported(
    detail: dict[str, Any], prompt: int = PROMPT, completion: int = COMPLETION
) -> None:
    assert detail["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": 0,
        "total_tokens": prompt + completion,
        "counted_by": "reported",
        "estimated": False,
    }


# -- usage of whole and streamed replies ---------------------------------------------------------


def test_a_whole_reply_is_recorded_with_the_upstreams_counts_and_cost(relay: Relay) -> None:
    key_id, key = _new_key(relay, "whole")
    rid = _rid("whole")
    raw = _client(relay.url, key).chat.completions.with_raw_response.create(
        model="fake-model", messages=_say("Hi"), extra_headers={"x-request-id": rid}
    )
    reply = raw.parse()
    assert raw.headers["x-request-id"] == rid
    assert reply.choices[0].message.content == ANSWER
    assert reply.usage is not None and reply.usage.total_tokens == PROMPT + COMPLETION

    detail = _recorded(relay.url, rid)
    assert detail["id"] == rid
    assert detail["method"] == "POST" and detail["path"] == "/v1/chat/completions"
    assert detail["status"] == 200 and detail["error_type"] is None
    assert detail["key_id"] == key_id
    assert detail["model"] == "fake-model" and detail["deployment"] == "fake-model/0"
    assert detail["attempts"] == 1 and detail["cache"] is None
    _assert_reported(detail)
    assert detail["cost_usd"] == pytest.approx(FAKE_COST)
    timings = detail["timings_ms"]
    assert {"queue", "first_byte", "first_token", "upstream", "overhead", "total"} <= set(timings)
    assert timings["first_byte"] is not None and timings["upstream"] > 0
    assert timings["total"] >= timings["upstream"]
    assert timings["overhead"] == pytest.approx(timings["total"] - timings["upstream"], abs=0.01)


def test_a_stream_whose_client_did_not_ask_for_usage_gets_none_yet_is_counted(
    relay: Relay, fake: FakeUpstream
) -> None:
    text = _unique("stream without usage")
    rid = _rid("stream-plain")
    client = _client(relay.url, MASTER_KEY)
    with client.chat.completions.with_streaming_response.create(
        model="fake-model", messages=_say(text), stream=True, extra_headers={"x-request-id": rid}
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
    ) == "".join(STREAM_PIECES)
    # Neither a usage chunk nor a "usage" field of any chunk reached the client ...
    assert all(c["choices"] for c in chunks)
    assert not any("usage" in line for line in lines)
    # ... though the gateway asked the upstream for usage all the same,
    (asked,) = _asked_with(fake, text)
    assert asked["stream_options"] == {"include_usage": True}
    # and recorded the counts the upstream reported.
    detail = _recorded(relay.url, rid)
    _assert_reported(detail)
    assert detail["cost_usd"] == pytest.approx(FAKE_COST)
    assert detail["timings_ms"]["first_token"] is not None


@pytest.mark.parametrize("asked", [False, True])
def test_a_stream_framed_as_openai_frames_it_loses_only_the_usage_it_did_not_ask_for(
    relay: Relay, asked: bool
) -> None:
    rid = _rid("compact")
    options = {"stream_options": {"include_usage": True}} if asked else {}
    with httpx.stream(
        "POST",
        relay.v1 + "/chat/completions",
        json={"model": "compact-stream", "messages": _say("Hi"), "stream": True, **options},
        headers={**_auth(MASTER_KEY), "x-request-id": rid},
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    texts = [c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]]
    assert "".join(texts) == "".join(STREAM_PIECES)
    if asked:  # as the upstream sent it
        assert all("usage" in c for c in chunks)
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == PROMPT
    else:
        assert all(c["choices"] for c in chunks)
        assert not any("usage" in line for line in lines)
    _assert_reported(_recorded(relay.url, rid), completion=COMPLETION)


def test_a_stream_that_asked_for_usage_gets_the_upstreams_counts(relay: Relay) -> None:
    rid = _rid("stream-usage")
    stream = _client(relay.url, MASTER_KEY).chat.completions.create(
        model="fake-model",
        messages=_say("Hi"),
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": rid},
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == PROMPT
    assert chunks[-1].usage.completion_tokens == COMPLETION
    assert sum(1 for c in chunks if c.usage is not None) == 1
    _assert_reported(_recorded(relay.url, rid))


def test_counts_no_upstream_reported_are_estimated_from_the_text(relay: Relay) -> None:
    # The "crlf" stream never carries usage, even when asked.
    key_id, key = _new_key(relay, "estimated")
    prompt = "x" * 40  # 10 tokens at 4 characters each
    rid = _rid("estimate")
    stream = _client(relay.url, key).chat.completions.create(
        model="crlf", messages=_say(prompt), stream=True, extra_headers={"x-request-id": rid}
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == ANSWER

    detail = _recorded(relay.url, rid)
    expected = {"prompt_tokens": 10, "completion_tokens": -(-len(ANSWER) // 4)}
    assert {k: detail["usage"][k] for k in expected} == expected
    assert detail["usage"]["counted_by"] == "estimate" and detail["usage"]["estimated"] is True
    assert detail["cost_usd"] == pytest.approx(cost("crlf", 10, expected["completion_tokens"]))
    (row,) = _rows(_usage(relay.url, key), key_id)
    assert row["estimated"] == 1 and row["requests"] == 1 and row["errors"] == 0


def test_a_client_that_hangs_up_mid_stream_is_still_recorded(relay: Relay) -> None:
    key_id, key = _new_key(relay, "hang-up")
    rid = _rid("hang-up")
    started = time.monotonic()
    stream = _client(relay.url, key).chat.completions.create(
        model="slow-stream", messages=_say("Tell me"), stream=True,
        extra_headers={"x-request-id": rid},
    )  # fmt: skip
    first = next(iter(stream))
    assert first.choices[0].delta.content == STREAM_PIECES[0]
    stream.close()  # hangs up: the whole answer would take 2.5 s more

    detail = _recorded(relay.url, rid)
    assert time.monotonic() - started < 2.0, "recorded only once the upstream had finished"
    assert detail["status"] == 499
    assert detail["key_id"] == key_id and detail["model"] == "slow-stream"
    usage = detail["usage"]
    assert usage["counted_by"] == "estimate" and usage["estimated"] is True
    assert usage["prompt_tokens"] == 2  # "Tell me": 7 characters
    # What had streamed before the hang-up, not the whole answer.
    assert 0 < usage["completion_tokens"] < -(-len(ANSWER) // 4)
    (row,) = _rows(_usage(relay.url, key), key_id)
    assert row["errors"] == 1 and row["estimated"] == 1


def test_replies_on_the_anthropic_surface_are_counted_too(relay: Relay) -> None:
    key_id, key = _new_key(relay, "anthropic")
    rid = _rid("anthropic")
    client = anthropic.Anthropic(base_url=relay.url, api_key=key, max_retries=0, timeout=30)
    message = client.messages.create(
        model="fake-model",
        max_tokens=50,
        messages=[{"role": "user", "content": "Hi"}],
        extra_headers={"x-request-id": rid},
    )
    assert message.usage.input_tokens == PROMPT and message.usage.output_tokens == COMPLETION
    detail = _recorded(relay.url, rid)
    assert detail["path"] == "/v1/messages" and detail["key_id"] == key_id
    _assert_reported(detail)
    assert detail["cost_usd"] == pytest.approx(FAKE_COST)


# -- cost ----------------------------------------------------------------------------------------


def test_cost_takes_the_config_price_by_upstream_id_then_served_name(relay: Relay) -> None:
    client = _client(relay.url, MASTER_KEY)
    table = TABLE["models"]["gpt-4o-mini"]
    expected = {
        "fake-model": FAKE_COST,
        "aliased": FAKE_COST,  # its upstream id's price, not its own name's
        "by-name": cost("by-name"),
        "table-priced": (PROMPT * table["input"] + COMPLETION * table["output"]) / 1e6,
        "overridden": cost("gpt-4o"),  # the config's price over the table's
    }
    assert (
        expected["overridden"]
        != (
            PROMPT * TABLE["models"]["gpt-4o"]["input"]
            + COMPLETION * TABLE["models"]["gpt-4o"]["output"]
        )
        / 1e6
    )
    for model, price in expected.items():
        rid = _rid(model)
        client.chat.completions.create(
            model=model, messages=_say("Hi"), extra_headers={"x-request-id": rid}
        )
        detail = _recorded(relay.url, rid)
        assert detail["cost_usd"] == pytest.approx(price, rel=1e-9), model


def test_the_local_model_is_free_whatever_the_config_says(relay: Relay) -> None:
    rid = _rid("local")
    reply = _client(relay.url, MASTER_KEY).chat.completions.create(
        model="local", messages=_say("Hi"), max_tokens=3, extra_headers={"x-request-id": rid}
    )
    assert reply.usage is not None
    detail = _recorded(relay.url, rid)
    assert detail["usage"]["counted_by"] == "reported"
    assert detail["usage"]["prompt_tokens"] == reply.usage.prompt_tokens > 0
    assert detail["usage"]["completion_tokens"] == reply.usage.completion_tokens
    assert detail["cost_usd"] == 0


# -- usage reports -------------------------------------------------------------------------------


def test_the_master_key_sees_every_keys_usage_and_a_key_only_its_own(relay: Relay) -> None:
    a_id, a_key = _new_key(relay, "team-a")
    b_id, b_key = _new_key(relay, "team-b")
    a_client, b_client = _client(relay.url, a_key), _client(relay.url, b_key)
    for _ in range(2):
        a_client.chat.completions.create(model="fake-model", messages=_say("Hi"))
    b_rid = _rid("team-b")
    b_client.chat.completions.create(
        model="fake-model", messages=_say("Hi"), extra_headers={"x-request-id": b_rid}
    )
    b_client.chat.completions.create(model="by-name", messages=_say("Hi"))

    everyone = _usage(relay.url, MASTER_KEY, **_around_today())
    assert everyone["object"] == "usage"
    assert everyone["pricing"] == {"as_of": TABLE["as_of"], "source": TABLE["source"]}
    (a_row,) = _rows(everyone, a_id)
    assert a_row == {
        "key_id": a_id,
        "model": "fake-model",
        "day": _today(),
        "requests": 2,
        "prompt_tokens": 2 * PROMPT,
        "completion_tokens": 2 * COMPLETION,
        "cached_tokens": 0,
        "total_tokens": 2 * (PROMPT + COMPLETION),
        "cost_usd": pytest.approx(2 * FAKE_COST),
        "saved_usd": 0,
        "cache_hits": 0,
        "estimated": 0,
        "errors": 0,
    }
    b_rows = {row["model"]: row for row in _rows(everyone, b_id)}
    assert set(b_rows) == {"fake-model", "by-name"}
    assert b_rows["by-name"]["cost_usd"] == pytest.approx(cost("by-name"))
    totals = everyone["totals"]
    assert totals["requests"] == sum(row["requests"] for row in everyone["data"]) >= 4
    assert totals["cost_usd"] == pytest.approx(sum(row["cost_usd"] for row in everyone["data"]))

    own = _usage(relay.url, a_key, **_around_today())
    assert [row["key_id"] for row in own["data"]] == [a_id]
    assert own["totals"]["requests"] == 2
    assert own["totals"]["cost_usd"] == pytest.approx(2 * FAKE_COST)
    assert _usage(relay.url, a_key)["data"] == own["data"]  # the default range holds today
    assert {row["key_id"] for row in _usage(relay.url, b_key)["data"]} == {b_id}

    # A key's inspector shows its own requests; another key's is not found.
    assert _recorded(relay.url, b_rid, MASTER_KEY)["key_id"] == b_id
    assert _recorded(relay.url, b_rid, b_key)["id"] == b_rid
    hidden = httpx.get(f"{relay.url}/v1/requests/{b_rid}", headers=_auth(a_key))
    assert hidden.status_code == 404 and b_id not in hidden.text
    listed = httpx.get(relay.url + "/v1/requests?limit=200", headers=_auth(a_key)).json()["data"]
    assert len(listed) == 2 and {row["key_id"] for row in listed} == {a_id}

    for query in ({"start": "yesterday"}, {"start": "2030-01-02", "end": "2030-01-01"}):
        refused = httpx.get(relay.url + "/v1/usage", params=query, headers=_auth(a_key))
        assert refused.status_code == 400, query


def test_usage_over_time_sums_each_bucket_per_key_or_model_with_latency_percentiles(
    relay: Relay,
) -> None:
    a_id, a_key = _new_key(relay, "series-a")
    b_id, b_key = _new_key(relay, "series-b")
    for _ in range(3):
        _client(relay.url, a_key).chat.completions.create(model="fake-model", messages=_say("Hi"))
    _client(relay.url, b_key).chat.completions.create(model="by-name", messages=_say("Hi"))
    window = {"start": str(time.time() - 600), "end": str(time.time() + 60), "bucket": "60"}

    def series(key: str, **query: str) -> dict[str, Any]:
        found = httpx.get(relay.url + "/v1/usage/series", params=query, headers=_auth(key))
        assert found.status_code == 200, found.text
        body: dict[str, Any] = found.json()
        assert body["object"] == "usage.series" and body["truncated"] is False
        return body

    by_key = series(MASTER_KEY, **window, by="key")
    assert by_key["by"] == "key" and by_key["bucket"] == 60
    mine = [row for row in by_key["data"] if row["group"] == a_id]
    assert sum(row["requests"] for row in mine) == 3  # in one bucket or, at a minute's turn, two
    assert sum(row["total_tokens"] for row in mine) == 3 * (PROMPT + COMPLETION)
    assert sum(row["cost_usd"] for row in mine) == pytest.approx(3 * FAKE_COST)
    for row in mine:
        assert row["start"] % 60 == 0 and row["errors"] == 0
        latency = row["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert [row["group"] for row in series(b_key, **window, by="key")["data"]] == [b_id]
    own = series(b_key, **window)
    assert own["by"] == "model" and {row["group"] for row in own["data"]} == {"by-name"}
    assert sum(row["cost_usd"] for row in own["data"]) == pytest.approx(cost("by-name"))

    for query in (
        {"by": "day"},
        {"bucket": "59"},
        {"start": "soon"},
        {"start": "100", "end": "50"},
        {"start": "0", "bucket": "60"},  # too many buckets to draw
    ):
        refused = httpx.get(relay.url + "/v1/usage/series", params=query, headers=_auth(a_key))
        assert refused.status_code == 400, query
        assert refused.json()["error"]["type"] == "invalid_request_error"


def test_a_reader_may_wait_for_the_record_of_a_request_still_being_served(relay: Relay) -> None:
    rid = _rid("awaited")
    url = f"{relay.url}/v1/requests/{rid}"
    client = _client(relay.url, MASTER_KEY)
    with ThreadPoolExecutor(1) as pool:
        served = pool.submit(
            client.chat.completions.create,
            model="slow",
            messages=_say("Hi"),
            extra_headers={"x-request-id": rid},
        )
        time.sleep(0.5)  # the request is with the upstream, which answers after 3 s
        assert httpx.get(url, headers=_auth(MASTER_KEY)).status_code == 404
        started = time.monotonic()
        awaited = httpx.get(url + "?wait_ms=8000", headers=_auth(MASTER_KEY), timeout=20)
        waited = time.monotonic() - started
        assert served.result().choices[0].message.content == ANSWER
    assert awaited.status_code == 200, awaited.text
    assert awaited.json()["id"] == rid and awaited.json()["status"] == 200
    assert 1.0 < waited < 8.0  # it came when the request ended, not at the deadline
    started = time.monotonic()
    unknown = httpx.get(url + "-never?wait_ms=300", headers=_auth(MASTER_KEY))
    assert unknown.status_code == 404 and time.monotonic() - started >= 0.3
    too_long = httpx.get(url + "?wait_ms=10001", headers=_auth(MASTER_KEY))
    assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "wait_ms"


def test_the_usage_and_inspect_commands_print_the_report(relay: Relay) -> None:
    key_id, key = _new_key(relay, "cli")
    rid = _rid("cli")
    _client(relay.url, key).chat.completions.create(
        model="fake-model", messages=_say("Hi"), extra_headers={"x-request-id": rid}
    )
    _recorded(relay.url, rid)

    as_json = _cli("usage", "--json", "--url", relay.url, "--api-key", key)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == _usage(relay.url, key)

    table = _cli("usage", "--url", relay.url, "--api-key", key)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "DAY", "KEY", "MODEL", "REQUESTS", "PROMPT", "COMPLETION", "COST_USD", "CACHED",
    ]  # fmt: skip
    assert lines[1].split() == [
        _today(),
        key_id,
        "fake-model",
        "1",
        str(PROMPT),
        str(COMPLETION),
        f"{FAKE_COST:.6f}",
        "0",
    ]
    assert lines[2].split() == ["total", "1", str(PROMPT), str(COMPLETION), f"{FAKE_COST:.6f}"]
    assert f"prices as of {TABLE['as_of']}" in lines[3]

    # The master key, from the environment, sees this key among the others.
    everyone = _cli("usage", "--json", "--url", relay.url, env={"LLMRELAY_MASTER_KEY": MASTER_KEY})
    assert everyone.returncode == 0, everyone.stderr
    assert key_id in {row["key_id"] for row in json.loads(everyone.stdout)["data"]}

    shown = _cli("inspect", rid, "--url", relay.url, "--api-key", key)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == _recorded(relay.url, rid, key)

    refused = _cli("usage", "--url", relay.url, "--api-key", "sk-relay-not-a-key")
    assert refused.returncode == 1 and "401" in refused.stderr


# -- the response cache --------------------------------------------------------------------------


def test_the_memory_cache_answers_a_repeated_deterministic_request(
    relay: Relay, fake: FakeUpstream
) -> None:
    key_id, key = _new_key(relay, "cache")
    client = _client(relay.url, key)
    text = _unique("cache me")
    answers = []
    for label in ("miss", "hit"):
        rid = _rid(label)
        raw = client.chat.completions.with_raw_response.create(
            model="fake-model",
            messages=_say(text),
            temperature=0,
            extra_headers={"x-request-id": rid},
        )
        assert raw.headers["x-llmrelay-cache"] == label
        answers.append(raw.parse())
        detail = _recorded(relay.url, rid)
        assert detail["cache"] == label
        _assert_reported(detail)
        if label == "miss":
            assert detail["cost_usd"] == pytest.approx(FAKE_COST) and detail["saved_usd"] == 0
        else:
            assert detail["cost_usd"] == 0
            assert detail["saved_usd"] == pytest.approx(FAKE_COST)
            assert detail["attempts"] == 0 and detail["upstream"] == []
    assert answers[0].choices[0].message.content == answers[1].choices[0].message.content
    assert len(_asked_with(fake, text)) == 1

    (row,) = _rows(_usage(relay.url, key), key_id)
    assert row["requests"] == 2 and row["cache_hits"] == 1
    assert row["cost_usd"] == pytest.approx(FAKE_COST)
    assert row["saved_usd"] == pytest.approx(FAKE_COST)


def test_a_streamed_request_is_answered_from_the_cache_as_a_stream(
    relay: Relay, fake: FakeUpstream
) -> None:
    client = _client(relay.url, MASTER_KEY)
    text = _unique("cached then streamed")
    whole = client.chat.completions.with_raw_response.create(
        model="fake-model", messages=_say(text), seed=7
    )
    assert whole.headers["x-llmrelay-cache"] == "miss"

    raw = client.chat.completions.with_raw_response.create(
        model="fake-model", messages=_say(text), seed=7, stream=True
    )
    assert raw.headers["x-llmrelay-cache"] == "hit"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.usage is None for c in chunks)  # not asked for

    with_usage = list(
        client.chat.completions.create(
            model="fake-model",
            messages=_say(text),
            seed=7,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert with_usage[-1].usage is not None
    assert with_usage[-1].usage.total_tokens == PROMPT + COMPLETION
    assert len(_asked_with(fake, text)) == 1

    # A streamed answer is kept whole, for a later whole request.
    streamed_first = _unique("streamed then cached")
    first = client.chat.completions.with_raw_response.create(
        model="fake-model", messages=_say(streamed_first), temperature=0, stream=True
    )
    assert first.headers["x-llmrelay-cache"] == "miss"
    assert "".join(c.choices[0].delta.content or "" for c in first.parse() if c.choices) == ANSWER
    again = client.chat.completions.with_raw_response.create(
        model="fake-model", messages=_say(streamed_first), temperature=0
    )
    assert again.headers["x-llmrelay-cache"] == "hit"
    assert again.parse().choices[0].message.content == ANSWER
    assert len(_asked_with(fake, streamed_first)) == 1


def test_cache_true_opts_a_request_in_and_is_not_sent_upstream(
    relay: Relay, fake: FakeUpstream
) -> None:
    client = _client(relay.url, MASTER_KEY)
    text = _unique("opt in")
    for expected in ("miss", "hit"):
        raw = client.chat.completions.with_raw_response.create(
            model="fake-model", messages=_say(text), temperature=0.9, extra_body={"cache": True}
        )
        assert raw.headers["x-llmrelay-cache"] == expected
        assert raw.parse().choices[0].message.content == ANSWER
    (asked,) = _asked_with(fake, text)
    assert "cache" not in asked and asked["temperature"] == 0.9

    # Without it, a request that is not deterministic is neither cached nor answered from it.
    plain = _unique("not cached")
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="fake-model", messages=_say(plain), temperature=0.9
        )
        assert "x-llmrelay-cache" not in raw.headers
    assert len(_asked_with(fake, plain)) == 2


def _ask_deterministic(url: str, text: str) -> str:
    raw = _client(url, None).chat.completions.with_raw_response.create(
        model="fake-model", messages=_say(text), temperature=0
    )
    assert raw.parse().choices[0].message.content == ANSWER
    return raw.headers["x-llmrelay-cache"]


def test_the_database_cache_outlives_a_restart(fake: FakeUpstream, tmp_path: Path) -> None:
    config = {
        "models": upstream_models(fake.base_url),
        "cache": {"enabled": True, "store": "database", "ttl_seconds": 60},
        "data_dir": str(tmp_path / "data"),
    }
    text = _unique("database cache")
    with run_gateway(config, tmp_path) as gateway:
        assert _ask_deterministic(gateway.url, text) == "miss"
        assert _ask_deterministic(gateway.url, text) == "hit"
    with run_gateway(config, tmp_path) as gateway:
        assert _ask_deterministic(gateway.url, text) == "hit"
    assert len(_asked_with(fake, text)) == 1
    with sqlite3.connect(tmp_path / "data" / "jobs.db") as db:
        assert db.execute("SELECT count(*) FROM cached_replies").fetchone()[0] == 1


def test_the_redis_cache_is_shared_by_gateways(
    fake: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    config = {
        "models": upstream_models(fake.base_url),
        "redis": redis_url,
        "cache": {"enabled": True, "store": "redis", "ttl_seconds": 60},
    }
    text = _unique("redis cache")
    with run_gateway(config, tmp_path) as first, run_gateway(config, tmp_path) as second:
        assert _ask_deterministic(first.url, text) == "miss"
        assert _ask_deterministic(first.url, text) == "hit"
        assert _ask_deterministic(second.url, text) == "hit"
    assert len(_asked_with(fake, text)) == 1


# -- metrics and overhead ------------------------------------------------------------------------


def _metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    scraped = httpx.get(url + "/metrics", headers=_auth(MASTER_KEY))
    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }


def test_metrics_count_requests_tokens_cost_retries_and_cache_hits(relay: Relay) -> None:
    before = _metrics(relay.url)
    client = _client(relay.url, MASTER_KEY)
    for _ in range(2):
        client.chat.completions.create(model="fake-model", messages=_say("Hi"))
    list(client.chat.completions.create(model="fake-model", messages=_say("Hi"), stream=True))
    text = _unique("metrics cache")
    for _ in range(2):
        client.chat.completions.create(model="aliased", messages=_say(text), temperature=0)
    last = _rid("retried")
    for model, rid in (("error-500", _rid("error-500")), ("retried", last)):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model=model, messages=_say("Hi"), extra_headers={"x-request-id": rid}
            )
    # Counted as it ends, just after its reply, as it is recorded.
    assert _recorded(relay.url, last)["attempts"] == 2
    after = _metrics(relay.url)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    ok = {"status": "200", "error_type": ""}
    assert delta("llmrelay_requests_total", model="fake-model", **ok) == 3
    assert delta("llmrelay_requests_total", model="aliased", **ok) == 2
    # The error type label is the one the client was sent.
    failed = {"status": "500", "error_type": "server_error"}
    assert delta("llmrelay_requests_total", model="error-500", **failed) == 1
    assert delta("llmrelay_requests_total", model="retried", **failed) == 1
    assert delta("llmrelay_retries_total", model="retried") == 1
    assert delta("llmrelay_retries_total", model="error-500") == 0
    assert delta("llmrelay_tokens_total", model="fake-model", kind="prompt") == 3 * PROMPT
    assert delta("llmrelay_tokens_total", model="fake-model", kind="completion") == 3 * COMPLETION
    assert delta("llmrelay_cost_usd_total", model="fake-model") == pytest.approx(3 * FAKE_COST)
    assert delta("llmrelay_cost_usd_total", model="aliased") == pytest.approx(FAKE_COST)
    assert delta("llmrelay_cache_hits_total", model="aliased") == 1
    assert delta("llmrelay_request_duration_seconds_count", model="fake-model") == 3
    assert delta("llmrelay_time_to_first_token_seconds_count", model="fake-model") == 1
    assert after[("llmrelay_requests_in_flight", ())] >= 1  # the scrape itself
    assert after[("llmrelay_jobs_queue_depth", ())] == 0

    # Only the master key may read them, when there is one.
    _, key = _new_key(relay, "metrics")
    assert httpx.get(relay.url + "/metrics", headers=_auth(key)).status_code == 403
    assert httpx.get(relay.url + "/metrics").status_code == 401


def test_every_response_carries_the_gateways_overhead(relay: Relay) -> None:
    _, key = _new_key(relay, "overhead")
    chat = {"model": "fake-model", "messages": _say("Hi")}
    calls: list[tuple[str, str, dict[str, Any] | None, str | None, int]] = [
        ("GET", "/health", None, None, 200),
        ("GET", "/health/ready", None, None, 200),
        ("GET", "/v1/models", None, key, 200),
        ("POST", "/v1/chat/completions", chat, key, 200),
        ("POST", "/v1/chat/completions", {**chat, "stream": True}, key, 200),
        ("POST", "/v1/chat/completions", {**chat, "model": "no-such-model"}, key, 404),
        ("POST", "/v1/chat/completions", {"model": "fake-model"}, key, 400),
        ("POST", "/v1/chat/completions", {**chat, "model": "error-401"}, key, 502),
        ("POST", "/v1/chat/completions", {**chat, "model": "error-429"}, key, 429),
        ("POST", "/v1/chat/completions", chat, None, 401),
        ("POST", "/v1/chat/completions", chat, "sk-relay-wrong", 401),
        ("GET", "/v1/usage", None, key, 200),
        ("GET", "/v1/requests/req_nonexistent", None, key, 404),
        ("GET", "/metrics", None, MASTER_KEY, 200),
        ("GET", "/admin/keys", None, key, 403),
        ("GET", "/no/such/path", None, key, 404),
    ]
    with httpx.Client(base_url=relay.url, timeout=30) as http:
        for method, path, body, auth, status in calls:
            response = http.request(method, path, json=body, headers=_auth(auth))
            assert response.status_code == status, (path, body, response.text)
            overhead = response.headers.get("x-llmrelay-overhead-ms")
            assert overhead is not None, (method, path, status)
            assert float(overhead) >= 0


def test_the_overhead_leaves_out_the_time_spent_waiting_on_the_upstream(relay: Relay) -> None:
    rid = _rid("slow")
    started = time.monotonic()
    raw = _client(relay.url, MASTER_KEY).chat.completions.with_raw_response.create(
        model="slow", messages=_say("Hi"), extra_headers={"x-request-id": rid}
    )
    waited = (time.monotonic() - started) * 1000
    assert raw.parse().choices[0].message.content == ANSWER
    assert waited >= 3000
    assert float(raw.headers["x-llmrelay-overhead-ms"]) < 500
    timings = _recorded(relay.url, rid)["timings_ms"]
    assert timings["upstream"] >= 2900 and timings["total"] >= timings["upstream"]
    assert timings["overhead"] < 500

    # A stream's pauses between chunks are the upstream's time too.
    rid = _rid("slow-stream")
    pieces = _client(relay.url, MASTER_KEY).chat.completions.create(
        model="slow-stream", messages=_say("Hi"), stream=True, extra_headers={"x-request-id": rid}
    )
    assert "".join(c.choices[0].delta.content or "" for c in pieces if c.choices) == "".join(
        STREAM_PIECES
    )
    timings = _recorded(relay.url, rid)["timings_ms"]
    assert timings["total"] >= 0.5 * (len(STREAM_PIECES) - 1) * 1000
    assert timings["upstream"] >= timings["total"] - 300 and timings["overhead"] < 300


# -- the request inspector -----------------------------------------------------------------------


def test_the_inspector_shows_what_went_upstream_with_secrets_redacted(
    relay: Relay, fake: FakeUpstream
) -> None:
    key_id, key = _new_key(relay, "inspected", system_prompt="Answer in French.")
    text = _unique("inspect me")
    rid = _rid("inspect")
    _client(relay.url, key).chat.completions.create(
        model="fake-model", messages=_say(text), extra_headers={"x-request-id": rid}
    )
    detail = _recorded(relay.url, rid, key)  # a key sees its own requests
    assert detail["content_kept"] is True
    assert detail["client_request"] == {"model": "fake-model", "messages": _say(text)}
    assert detail["injected"] == ["Answer in French."]
    (call,) = detail["upstream"]
    assert call["url"] == fake.base_url + "/chat/completions"
    assert call["deployment"] == "fake-model/0" and call["status"] == 200
    headers = {name.lower(): value for name, value in call["headers"].items()}
    assert headers["authorization"] == "[redacted]"
    system = {"role": "system", "content": "Answer in French."}
    assert call["body"]["messages"] == [system, *_say(text)]
    (arrived,) = _asked_with(fake, text)  # what the inspector says went is what arrived
    assert arrived["messages"] == call["body"]["messages"]
    assert call["response"]["choices"][0]["message"]["content"] == ANSWER
    assert call["response_truncated"] is False
    assert UPSTREAM_KEY not in json.dumps(detail)
    _assert_reported(detail)
    assert detail["cost_usd"] == pytest.approx(FAKE_COST)

    assert _recorded(relay.url, rid, MASTER_KEY) == detail
    _, other = _new_key(relay, "someone else")
    hidden = httpx.get(f"{relay.url}/v1/requests/{rid}", headers=_auth(other))
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "request_not_found"
    assert text not in hidden.text

    listed = httpx.get(relay.url + "/v1/requests", params={"limit": 1}, headers=_auth(key))
    (newest,) = listed.json()["data"]
    assert newest["id"] == rid and newest["key_id"] == key_id and newest["status"] == 200
    earlier = httpx.get(
        relay.url + "/v1/requests", params={"before": newest["created_at"]}, headers=_auth(key)
    )
    assert earlier.json()["data"] == []


def test_without_log_content_the_inspector_keeps_no_bodies(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    config = {"models": upstream_models(fake.base_url)}
    text = _unique("keep me not")
    rid = _rid("no-content")
    with run_gateway(config, tmp_path) as gateway:
        _client(gateway.url, None).chat.completions.create(
            model="fake-model", messages=_say(text), extra_headers={"x-request-id": rid}
        )
        detail = _recorded(gateway.url, rid, None)
    assert detail["content_kept"] is False
    assert not {"client_request", "injected", "upstream"} & set(detail)
    _assert_reported(detail)
    assert detail["timings_ms"]["total"] > 0
    dumped = json.dumps(detail)
    assert text not in dumped and ANSWER not in dumped


def test_the_inspector_cuts_bodies_at_its_size_limit(fake: FakeUpstream, tmp_path: Path) -> None:
    config = {
        "models": upstream_models(fake.base_url),
        "log_content": True,
        "inspector": {"max_kb": 1, "retention_hours": 1},
    }
    text = "long " * 600  # 3000 characters
    rid = _rid("cut")
    with run_gateway(config, tmp_path) as gateway:
        _client(gateway.url, None).chat.completions.create(
            model="fake-model", messages=_say(text), extra_headers={"x-request-id": rid}
        )
        detail = _recorded(gateway.url, rid, None)
    assert isinstance(detail["client_request"], str)
    assert 0 < len(detail["client_request"].encode()) <= 1024
    (call,) = detail["upstream"]
    assert isinstance(call["body"], str) and len(call["body"].encode()) <= 1024
    assert call["response"]["choices"][0]["message"]["content"] == ANSWER  # small: kept whole


# -- the access log ------------------------------------------------------------------------------


def _log_lines(log: Path, *request_ids: str) -> list[str]:
    """Every whole line of the gateway's log, once the access lines of ``request_ids`` are in
    it (they are flushed four times a second)."""
    deadline = time.monotonic() + 10
    while True:
        text = log.read_text()
        lines = text[: text.rfind("\n") + 1].splitlines()
        logged = {
            entry.get("request_id")
            for entry in map(_json_or_none, lines)
            if entry is not None and entry.get("logger") == "llmrelay.access"
        }
        if set(request_ids) <= logged:
            return lines
        assert time.monotonic() < deadline, f"no access line for {request_ids}"
        time.sleep(0.1)


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def test_access_log_lines_are_json_with_the_requests_facts(relay: Relay) -> None:
    key_id, key = _new_key(relay, "logged")
    client = _client(relay.url, key)
    whole, streamed, health = _rid("log-whole"), _rid("log-stream"), _rid("log-health")
    _whole_and_streamed(client, whole, streamed)
    httpx.get(relay.url + "/health", headers={"x-request-id": health})

    entries = [e for e in map(_json_or_none, _log_lines(relay.log, whole, streamed, health)) if e]
    assert all({"ts", "level", "logger", "request_id"} <= set(e) for e in entries)
    access = {e["request_id"]: e for e in entries if e["logger"] == "llmrelay.access"}
    line = access[whole]
    assert line["level"] == "info"
    assert {k: line[k] for k in ("method", "path", "status", "key_id")} == {
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 200,
        "key_id": key_id,
    }
    assert line["model"] == "fake-model" and line["deployment"] == "fake-model/0"
    assert line["attempts"] == 1
    assert (line["prompt_tokens"], line["completion_tokens"]) == (PROMPT, COMPLETION)
    assert line["cost_usd"] == pytest.approx(FAKE_COST)
    assert "cache" in line and line["cache"] is None
    assert line["ms"] > 0 and 0 <= line["overhead_ms"] <= line["ms"]
    assert "ttft_ms" in line
    stream_line = access[streamed]
    assert stream_line["ttft_ms"] is not None and 0 < stream_line["ttft_ms"] <= stream_line["ms"]
    assert (stream_line["prompt_tokens"], stream_line["completion_tokens"]) == (PROMPT, COMPLETION)
    health_line = access[health]
    assert (health_line["path"], health_line["status"]) == ("/health", 200)
    assert "model" not in health_line and "key_id" not in health_line


def test_every_line_the_gateway_logs_is_json(relay: Relay) -> None:
    rid = _rid("json-only")
    httpx.get(relay.url + "/health", headers={"x-request-id": rid})
    lines = _log_lines(relay.log, rid)
    assert len(lines) > 10
    not_json = [line for line in lines if _json_or_none(line) is None]
    assert not_json == []


# -- records in the database ---------------------------------------------------------------------


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_records_reach_the_database_even_when_the_gateway_stops_at_once(
    store: str, fake: FakeUpstream, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    config: dict[str, Any] = {
        "models": upstream_models(fake.base_url),
        "pricing": {"fake-model": PRICES["fake-model"]},
        "data_dir": str(tmp_path / "data"),
    }
    if store == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
        config["jobs"] = {"store": url}
    whole, streamed = _rid("db-whole"), _rid("db-stream")
    with run_gateway(config, tmp_path) as gateway:
        client = _client(gateway.url, None)
        _whole_and_streamed(client, whole, streamed)
        # Stopped at once, before a batch is due: the graceful shutdown writes the records.
    query = (
        "SELECT id, model, status, prompt_tokens, completion_tokens, counted_by, cost, day"
        " FROM requests ORDER BY created_at"
    )
    if store == "postgresql":
        with psycopg.connect(url) as db:
            rows = db.execute(query).fetchall()
    else:
        with sqlite3.connect(tmp_path / "data" / "jobs.db") as db:
            rows = db.execute(query).fetchall()
    assert [row[:6] for row in rows] == [
        (whole, "fake-model", 200, PROMPT, COMPLETION, "reported"),
        (streamed, "fake-model", 200, PROMPT, COMPLETION, "reported"),
    ]
    assert all(float(row[6]) == pytest.approx(FAKE_COST) for row in rows)
    assert {row[7] for row in rows} <= {
        _today(),
        (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d"),
    }

    # A gateway started again on the same database reports them.
    with run_gateway(config, tmp_path) as gateway:
        report = _usage(gateway.url, None)
    assert report["totals"]["requests"] == 2
    assert report["totals"]["prompt_tokens"] == 2 * PROMPT
    assert report["totals"]["cost_usd"] == pytest.approx(2 * FAKE_COST)


# -- secrets -------------------------------------------------------------------------------------


def test_no_secret_shows_in_replies_records_metrics_or_logs(
    relay: Relay, fake: FakeUpstream
) -> None:
    _, virtual = _new_key(relay, "secrets", system_prompt="Be brief.")
    secret_values = [UPSTREAM_KEY, PLAIN_UPSTREAM_KEY, MASTER_KEY, virtual]
    shown: list[str] = []  # everything the gateway showed anyone
    rids: list[str] = []
    before = len(fake.requests)

    with httpx.Client(base_url=relay.url, timeout=30) as http:

        def send(key: str, model: str, **extra: Any) -> httpx.Response:
            rid = _rid("secret")
            rids.append(rid)
            body = {"model": model, "messages": _say("Hi"), **extra}
            response = http.post(
                "/v1/chat/completions", json=body, headers={**_auth(key), "x-request-id": rid}
            )
            shown.append(response.text)
            shown.append(json.dumps(dict(response.headers)))
            return response

        for key in (virtual, MASTER_KEY):
            assert send(key, "fake-model").status_code == 200
            assert send(key, "fake-model", stream=True).status_code == 200
            assert send(key, "fake-model", temperature=0, cache=True).status_code == 200
            leaked = send(key, "leaky-key")
            assert leaked.status_code == 400 and "[redacted]" in leaked.text
            plain = send(key, "leaky-plain")
            assert plain.status_code == 400 and "[redacted]" in plain.text
            assert send(key, "error-401").status_code == 502
            assert send(key, "error-500").status_code == 500
            assert send(key, "midstream-error", stream=True).status_code == 200
            assert send(key, "truncated", stream=True).status_code == 200
            assert send(key, "crlf", stream=True).status_code == 200
        # The upstream did get the keys, so any leak would have had something to leak.
        sent = [json.dumps(r.headers) for r in fake.requests[before:]]
        assert any(UPSTREAM_KEY in h for h in sent) and any(PLAIN_UPSTREAM_KEY in h for h in sent)

        failed = anthropic.Anthropic(base_url=relay.url, api_key=virtual, max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as refused:
            failed.messages.create(
                model="leaky-plain", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
            )
        shown.append(refused.value.response.text)

        for key in (virtual, MASTER_KEY):
            shown.append(http.get("/v1/usage", headers=_auth(key)).text)
            listed = http.get("/v1/requests", params={"limit": 200}, headers=_auth(key))
            shown.append(listed.text)
        shown.append(http.get("/metrics", headers=_auth(MASTER_KEY)).text)
        everyone = http.get("/v1/requests", params={"limit": 200}, headers=_auth(MASTER_KEY))
        ids = {row["id"] for row in everyone.json()["data"]} | set(rids)
        details = [_recorded(relay.url, rid) for rid in sorted(ids)]
        assert any(
            "[redacted]" in json.dumps(call["response"])
            for detail in details
            for call in detail.get("upstream", ())
        )
        shown += [json.dumps(detail) for detail in details]

    _log_lines(relay.log, *rids)
    shown.append(relay.log.read_text())
    for secret in secret_values:
        for index, text in enumerate(shown):
            assert secret not in text, f"secret #{secret_values.index(secret)} in #{index}"


def test_only_a_request_that_opened_a_connection_spent_time_connecting(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    with run_gateway({"models": upstream_models(upstream.base_url)}, tmp_path) as gateway:
        sent = [
            httpx.post(
                f"{gateway.v1}/chat/completions",
                json={"model": "fake-model", "messages": _say("Hi")},
            ).headers["x-request-id"]
            for _ in range(2)
        ]
        first, second = (_recorded(gateway.url, rid, None)["timings_ms"] for rid in sent)
    assert first["connect"] > 0  # a new gateway opens its first connection upstream
    assert second["connect"] == 0  # and the next request reuses it
    assert first["connect"] <= first["first_byte"] <= first["total"]
