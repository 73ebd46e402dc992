"""Shared fixtures: a fake OpenAI upstream and llmrelay itself, both as real servers on loopback."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
import yaml

from llmrelay.app import create_app
from llmrelay.config import load_config
from llmrelay.protocol import HTTPProtocol

from . import services
from .fakes.openai_upstream import FakeUpstream
from .services import free_port

UPSTREAM_KEY = "sk-upstream-secret-0123456789"
# Each scenario of the fake upstream is reachable as a model of the same name.
UPSTREAM_MODELS = [
    "fake-model",
    "tools-model",
    "error-400",
    "error-401",
    "error-429",
    "error-500",
    "garbage",
    "midstream-error",
    "truncated",
    "slow",
    "slow-stream",
    "leaky-key",
    "crlf",
    "bad-chunk",
    "compact-stream",
]


@dataclass
class Running:
    url: str
    server: uvicorn.Server

    @property
    def v1(self) -> str:
        return self.url + "/v1"


@contextmanager
def run_gateway(
    config: dict[str, Any], tmp: Path, env: dict[str, str] | None = None
) -> Iterator[Running]:
    """Start llmrelay from a YAML config file in a thread, as ``llmrelay serve`` would.

    Unless the config says otherwise, a failure is tried once and never cools a deployment
    down, so that tests of what one upstream answers see that answer each time.
    """
    config = {
        "retry": {"attempts": 1},
        "cooldown": {"failures": 1_000_000},
        "data_dir": str(tmp / f"data-{free_port()}"),
        **config,
    }
    path = tmp / f"config-{free_port()}.yaml"
    path.write_text(yaml.safe_dump(config))
    app = create_app(load_config(path, env or {}))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            loop="uvloop",
            http=HTTPProtocol,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("llmrelay did not start")
        time.sleep(0.02)
    try:
        yield Running(f"http://127.0.0.1:{port}", server)
    finally:
        server.should_exit = True
        thread.join(15)


def fake_models(provider: str, root: str, **common: Any) -> Callable[..., dict[str, Any]]:
    """A builder of config entries for ``provider`` models served by a fake upstream at
    ``root``: ``model(name, upstream_model, **fields)``."""

    def model(name: str, upstream: str, **more: Any) -> dict[str, Any]:
        return {
            "name": name,
            "provider": provider,
            "model": upstream,
            "base_url": root,
            "image_allow_private": True,
            **common,
            **more,
        }

    return model


def upstream_models(base_url: str) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = [
        {"name": name, "provider": "openai", "base_url": base_url, "api_key": UPSTREAM_KEY}
        for name in UPSTREAM_MODELS
    ]
    models += [
        {
            "name": "aliased",
            "provider": "openai",
            "model": "fake-model",
            "base_url": base_url,
            "api_key": UPSTREAM_KEY,
        },
        {
            "name": "times-out",
            "provider": "openai",
            "model": "slow",
            "base_url": base_url,
            "timeouts": {"first_byte": 0.5},
        },
        {
            "name": "unreachable",
            "provider": "openai",
            "base_url": f"http://127.0.0.1:{free_port()}/v1",
            "timeouts": {"connect": 1},
        },
    ]
    return models


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="session")
def gateway(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """llmrelay with every fake-upstream scenario and the embedded model."""
    config = {
        "default_model": "fake-model",
        "models": [
            *upstream_models(upstream.base_url),
            {"name": "local", "provider": "local", "max_tokens": 16, "n_ctx": 2048},
        ],
    }
    with run_gateway(config, tmp_path_factory.mktemp("gateway")) as running:
        yield running


@pytest.fixture(scope="session")
def client(gateway: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="session")
def http(gateway: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=60) as session:
        yield session


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the whole run; each test makes its own database on it."""
    with services.postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A new, empty database for one test."""
    return services.fresh_database(postgres_server, f"test_{secrets.token_hex(6)}")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with services.redis(tmp_path_factory.mktemp("redis")) as url:
        yield url
