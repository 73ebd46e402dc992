"""PostgreSQL and Redis servers for the tests, started on loopback in a temporary folder and
stopped after. ``make test`` installs both from Debian's packages."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import redis as redis_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed; `make test` installs it")
    return found


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL will not run as root; run it as the postgres user that Debian made."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres() -> Iterator[str]:
    """A fresh PostgreSQL server; its URL, for the database ``postgres``."""
    # Its own folder straight under /tmp, as the postgres user must reach it.
    folder = Path(tempfile.mkdtemp(prefix="llmrelay-postgres-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    subprocess.run(
        _as_postgres([_postgres_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    port = free_port()
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    )
    subprocess.run(
        _as_postgres(
            [
                _postgres_bin("pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(folder / "log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([_postgres_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(server: str, name: str) -> str:
    """A new, empty database on the server at ``server``; its URL."""
    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return server.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def redis(folder: Path) -> Iterator[str]:
    """A Redis server that keeps nothing on disk; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; `make test` installs it")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=(folder / "log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        client = redis_client.Redis(port=port)
        while True:
            try:
                client.ping()
                break
            except redis_client.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def llmrelay(config: Path, log: Path, port: int | None = None) -> subprocess.Popen[bytes]:
    """``llmrelay serve`` on ``port``, once it answers; ``llmrelay worker`` when no port is
    given. It runs in the config's folder, with none of the caller's llmrelay settings."""
    command = ["serve", "--port", str(port)] if port is not None else ["worker"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "OPENAI_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "llmrelay", *command, "--config", str(config)],
        cwd=config.parent,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    if port is None:
        return process
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError(log.read_text())


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop as an operator would, with SIGTERM, and wait for the process to end."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
