"""Added latency of the Anthropic-translated path against the OpenAI-compatible one.

Starts the shared ruler's fake OpenAI upstream, a fake Anthropic upstream
(``bench/anthropic_upstream.py``) and ``llmrelay serve`` routing one model to each. Then
it sends the same OpenAI chat request to both gateway models, and each upstream its own
native request directly, alternating sequentially as the shared ``overhead.py`` does. A
path's added latency is its median through the gateway minus its upstream's direct median.
usage: .venv/bin/python bench/translated.py [ROUNDS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
RULER = HERE.parents[1] / "shared" / "bench" / "fake_upstream.py"
PROMPT = [{"role": "user", "content": "Say hello"}]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(args: list[str], ready: str) -> Iterator[None]:
    process = subprocess.Popen([sys.executable, *args], stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                httpx.get(ready, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(10)


def measure(client: httpx.Client, targets: dict[str, tuple[str, dict[str, Any]]], rounds: int,
            stream: bool) -> dict[str, float]:  # fmt: skip
    """The median milliseconds of each target, run alternately."""
    times: dict[str, list[float]] = {name: [] for name in targets}

    def once(url: str, body: dict[str, Any]) -> None:
        with client.stream("POST", url, json={**body, "stream": stream}) as response:
            response.raise_for_status()
            for _ in response.iter_bytes():
                pass

    for url, body in targets.values():  # warm-up
        for _ in range(20):
            once(url, body)
    for _ in range(rounds):
        for name, (url, body) in targets.items():
            started = time.perf_counter()
            once(url, body)
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main(rounds: int) -> None:
    openai_port, anthropic_port, gateway_port = free_port(), free_port(), free_port()
    openai_root = f"http://127.0.0.1:{openai_port}/v1"
    anthropic_root = f"http://127.0.0.1:{anthropic_port}"
    gateway = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
    config = Path(tempfile.mkdtemp()) / "relay.yaml"
    config.write_text(
        "models:\n"
        f"  - {{name: fake-model, provider: openai, base_url: '{openai_root}', api_key: sk-fake}}\n"
        f"  - {{name: claude, provider: anthropic, model: fake-model, base_url: '{anthropic_root}',"
        " api_key: sk-fake}\n"
    )
    chat = {"model": "fake-model", "messages": PROMPT, "max_tokens": 16}
    native = {"model": "fake-model", "messages": PROMPT, "max_tokens": 16}
    targets = {
        "openai direct": (openai_root + "/chat/completions", chat),
        "openai via llmrelay": (gateway, chat),
        "anthropic direct": (anthropic_root + "/v1/messages", native),
        "anthropic via llmrelay": (gateway, {**chat, "model": "claude"}),
    }
    with ExitStack() as stack:
        stack.enter_context(serving([str(RULER), str(openai_port), "20"], openai_root + "/models"))
        stack.enter_context(
            serving(
                [str(HERE / "anthropic_upstream.py"), str(anthropic_port), "20"], anthropic_root
            )
        )
        serve = ["-m", "llmrelay", "serve", "--config", str(config), "--port", str(gateway_port)]
        stack.enter_context(serving(serve, f"http://127.0.0.1:{gateway_port}/health/ready"))
        headers = {"authorization": "Bearer sk-bench", "anthropic-version": "2023-06-01"}
        client = stack.enter_context(httpx.Client(timeout=30, headers=headers))
        result = []
        for stream in (False, True):
            medians = measure(client, targets, rounds, stream)
            kind = "20-chunk stream" if stream else "plain"
            added = {
                path: medians[f"{path} via llmrelay"] - medians[f"{path} direct"]
                for path in ("openai", "anthropic")
            }
            print(f"== {kind}")
            for target, value in medians.items():
                print(f"{target:24s} median {value:6.3f} ms")
            for path, value in added.items():
                print(f"{path:10s} added {value:6.3f} ms")
            ratio = added["anthropic"] / added["openai"]
            print(f"anthropic / openai: {ratio:.2f}")
            tag = "_stream" if stream else ""
            result += [
                f"openai_added{tag}_ms={added['openai']:.3f}",
                f"anthropic_added{tag}_ms={added['anthropic']:.3f}",
                f"ratio{tag}={ratio:.2f}",
            ]
    print("RESULT " + " ".join(result))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
