"""A soak of the gateway's resilience: retries, timeouts and cooldowns against faulty upstreams.

Starts two ``bench/faulty_upstream.py`` processes (30 % 5xx, 10 % 429, 2 % of streams stalling
halfway) and ``llmrelay serve`` with one model deployed on both, then sends REQUESTS chat
requests, every other one streamed, CONCURRENCY at a time. Every request could succeed, since
ten attempts over two deployments almost never all fail, except a stream that stalls after
its first bytes reached the client: that one can only end with a clean error event. The
success rate is over the others. It reports that rate, latencies, the attempts the gateway
says it made, its memory growth after a warm-up, and the connections it still holds to the
upstreams once the load is over.
usage: .venv/bin/python bench/soak.py [REQUESTS] [CONCURRENCY]
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
TOTAL_TIMEOUT = 20
DEADLINE = TOTAL_TIMEOUT + 5  # the client's own limit, so that nothing can hang the bench
WARM_UP = 1000
SETTLE = 2  # seconds between the last reply and counting connections
FAULTS = ["--p5xx", "0.3", "--p429", "0.1", "--pstall", "0.02"]
CONFIG = """\
log_level: warning
models:
  - name: soak
    deployments:
      - {{provider: openai, base_url: "http://127.0.0.1:{a}/v1", api_key: sk-fake}}
      - {{provider: openai, base_url: "http://127.0.0.1:{b}/v1", api_key: sk-fake}}
    routing: least_in_flight
    retry: {{attempts: 10, initial_ms: 20, factor: 2, jitter: 0.1, max_ms: 500}}
    timeouts: {{connect: 2, first_byte: 5, idle: 2, total: {total}}}
    cooldown: {{failures: 10, seconds: 1}}
"""
CHAT = {"model": "soak", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
# Readiness probes must reach loopback directly, whatever proxy the environment names.
PROBE = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Outcome:
    streamed: bool
    ok: bool
    status: str  # the HTTP status, refined for a 200 that failed, or how the request broke
    latency_ms: float
    attempts: int | None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{url}: the server exited with {process.returncode}:\n{log.read_text()}"
            )
        try:
            with PROBE.open(url, timeout=1):
                return
        except OSError:  # refused, or an error status while the server starts
            time.sleep(0.1)
    raise RuntimeError(f"{url}: not ready after 30 s:\n{log.read_text()}")


@contextmanager
def serving(args: list[str], ready: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A Python process, running until the block ends however it ends; its stderr goes to
    ``log``, which is shown if it never becomes ready."""
    with log.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, *args], stderr=stderr)
    try:
        wait_ready(process, ready, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


STALLED = "200 stalled mid-stream"


def stream_verdict(body: bytes) -> str:
    """'200' for a stream that ends in [DONE] with no error event, else what went wrong."""
    for line in body.splitlines():
        if line == b"event: error":
            return "200 error event"
        if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
            try:
                data = json.loads(line[5:])
            except ValueError:
                return "200 bad event"
            if isinstance(data, dict) and "error" in data:
                # A stream that stalls after its first bytes reached the client cannot be
                # retried: it can only end cleanly.
                stalled = "stream stalled" in str(data["error"].get("message", ""))
                return STALLED if stalled else "200 error event"
    return "200" if body.rstrip().endswith(b"data: [DONE]") else "200 cut short"


def whole_verdict(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return "200 not JSON"
    ok = isinstance(data, dict) and isinstance(data.get("choices"), list)
    return "200" if ok else "200 no choices"


async def one(session: aiohttp.ClientSession, url: str, streamed: bool) -> Outcome:
    started = time.perf_counter()
    attempts = None
    request = {**CHAT, "stream": True} if streamed else CHAT
    try:
        async with asyncio.timeout(DEADLINE):
            async with session.post(url, json=request) as response:
                header = response.headers.get("x-llmrelay-attempts")
                attempts = int(header) if header and header.isdigit() else None
                body = await response.read()
        if response.status != 200:
            status = str(response.status)
        else:
            status = stream_verdict(body) if streamed else whole_verdict(body)
    except aiohttp.ClientError as exc:
        status = type(exc).__name__
    except TimeoutError:
        status = "hung"
    latency = (time.perf_counter() - started) * 1000
    return Outcome(streamed, status == "200", status, latency, attempts)


async def load(session: aiohttp.ClientSession, url: str, requests: int, concurrency: int,
               pid: int) -> tuple[list[Outcome], float]:  # fmt: skip
    """Send ``requests`` requests, odd ones streamed, ``concurrency`` at a time; and the
    gateway's RSS once the first WARM_UP have finished. The load never pauses for that sample,
    lest one hung request hold every other worker back."""
    outcomes: list[Outcome] = []
    warmed: list[float] = []
    pending = iter(range(requests))  # shared: each worker takes the next number when free

    async def worker() -> None:
        for number in pending:
            outcomes.append(await one(session, url, number % 2 == 1))
            if len(outcomes) == min(WARM_UP, requests):
                warmed.append(rss_mb(pid))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes, warmed[0]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed since the directory was listed
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def upstream_connections(pid: int, ports: set[int]) -> Counter[str]:
    """The process's TCP sockets whose remote end is one of ``ports``, counted by state."""
    names = {"01": "established", "08": "close_wait"}
    inodes = socket_inodes(pid)
    states: Counter[str] = Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if int(remote.rsplit(":", 1)[1], 16) in ports and inode in inodes:
                states[names.get(state, f"state {state}")] += 1
    return states


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass(frozen=True)
class Gauges:
    rss_start: float
    rss_end: float
    connections: Counter[str]
    seconds: float


def report(outcomes: list[Outcome], concurrency: int, gauges: Gauges) -> None:
    total = len(outcomes)
    successes = sum(o.ok for o in outcomes)
    failures = Counter(o.status for o in outcomes if not o.ok)
    could = total - failures[STALLED]
    rate = successes / could * 100
    hung = failures["hung"]
    attempts = [o.attempts for o in outcomes if o.attempts is not None]
    growth = (gauges.rss_end - gauges.rss_start) / gauges.rss_start * 100
    open_connections = sum(gauges.connections.values())
    print(f"== soak: {total} requests, {concurrency} at a time, two faulty upstreams")
    print(f"duration        {gauges.seconds:.1f} s ({total / gauges.seconds:.0f} requests/s)")
    print(f"successes       {successes} of {total} ({successes / total * 100:.3f} %)")
    print(f"                {successes} of the {could} that could succeed ({rate:.3f} %)")
    print(f"failures        {', '.join(f'{k}: {n}' for k, n in failures.most_common()) or 'none'}")
    print(f"hung            {hung} (client deadline {DEADLINE} s)")
    groups = {
        "all": [o.latency_ms for o in outcomes],
        "plain": [o.latency_ms for o in outcomes if not o.streamed],
        "streamed": [o.latency_ms for o in outcomes if o.streamed],
    }
    for name, values in groups.items():
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(f"latency {name:8s}{len(values):6d} requests  p50 {p50:8.1f} ms  p99 {p99:8.1f} ms")
    if attempts:
        mean = sum(attempts) / len(attempts)
        print(f"attempts        mean {mean:.2f} over {len(attempts)} replies that gave them")
    else:
        print("attempts        no reply had x-llmrelay-attempts")
    print(f"gateway RSS     {gauges.rss_start:.1f} MB after {min(WARM_UP, total)} requests, "
          f"{gauges.rss_end:.1f} MB at the end ({growth:+.1f} %)")  # fmt: skip
    states = ", ".join(f"{k} {n}" for k, n in gauges.connections.items())
    print(f"upstream conns  {open_connections} open {SETTLE} s after the end ({states or 'none'})")
    print(
        f"RESULT success_rate={rate:.3f} p50_ms={percentile(groups['all'], 0.5):.1f}"
        f" p99_ms={percentile(groups['all'], 0.99):.1f} rss_start_mb={gauges.rss_start:.1f}"
        f" rss_end_mb={gauges.rss_end:.1f} rss_growth_pct={growth:.1f}"
        f" open_connections={open_connections} hung={hung}"
    )


async def soak(url: str, pid: int, ports: set[int], requests: int, concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    # No aiohttp timeout: each request's own deadline is the only limit.
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        outcomes, rss_start = await load(session, url, requests, concurrency, pid)
        seconds = time.perf_counter() - started
        rss_end = rss_mb(pid)
    await asyncio.sleep(SETTLE)
    gauges = Gauges(rss_start, rss_end, upstream_connections(pid, ports), seconds)
    report(outcomes, concurrency, gauges)


def main(requests: int, concurrency: int) -> None:
    ports = (free_port(), free_port())
    gateway_port = free_port()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for seed, port in enumerate(ports, start=1):
            args = [str(HERE / "faulty_upstream.py"), str(port), *FAULTS, "--seed", str(seed)]
            ready = f"http://127.0.0.1:{port}/v1/models"
            stack.enter_context(serving(args, ready, workdir / f"upstream-{port}.log"))
        config = workdir / "soak.yaml"
        config.write_text(CONFIG.format(a=ports[0], b=ports[1], total=TOTAL_TIMEOUT))
        serve = ["-m", "llmrelay", "serve", "--config", str(config), "--port", str(gateway_port)]
        ready = f"http://127.0.0.1:{gateway_port}/health/ready"
        gateway = stack.enter_context(serving(serve, ready, workdir / "gateway.log"))
        url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
        asyncio.run(soak(url, gateway.pid, set(ports), requests, concurrency))


if __name__ == "__main__":
    # A plain kill unwinds like Ctrl-C does, so that the started processes are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 20000,
            int(sys.argv[2]) if len(sys.argv) > 2 else 32,
        )
    except KeyboardInterrupt:  # the processes are already stopped; no traceback needed
        sys.exit(130)
