"""Time to first token and generation speed of the embedded model, through the gateway.

Starts ``llmrelay serve`` with no config (the bundled Gemma 3 270M), then streams a
few answers with the official SDK and prints one RESULT line.
usage: .venv/bin/python bench/local_model.py [RUNS]
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time

import httpx
import openai


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(runs: int) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "LLMRELAY_CONFIG")}
    server = subprocess.Popen(
        [sys.executable, "-m", "llmrelay", "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused")
        ttfts, speeds = [], []
        for _ in range(runs):
            started = time.perf_counter()
            first = None
            stream = client.chat.completions.create(
                model="local",
                messages=[{"role": "user", "content": "Write a short story about a robot."}],
                max_tokens=128,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            tokens = 0
            for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter()
                if chunk.usage:
                    tokens = chunk.usage.completion_tokens
            ended = time.perf_counter()
            assert first is not None
            ttfts.append((first - started) * 1000)
            speeds.append(tokens / (ended - first))
        print(
            f"RESULT local_ttft_ms={statistics.median(ttfts):.0f} "
            f"local_tokens_per_s={statistics.median(speeds):.1f} runs={runs}"
        )
    finally:
        server.terminate()
        server.wait(15)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
