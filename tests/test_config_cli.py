"""The YAML config (``load_config``) and the ``llmrelay`` command, run as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
import yaml

from llmrelay.config import Config, ConfigError, load_config
from llmrelay.providers.local.provider import LocalSpec
from llmrelay.providers.openai import OpenAISpec

from .conftest import UPSTREAM_KEY, Running, free_port
from .fakes.openai_upstream import ANSWER, FakeUpstream

# Variables that would change what the CLI does; every subprocess starts without them.
CLI_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "LLMRELAY_CONFIG",
    "LLMRELAY_DOTENV",
    "LLMRELAY_URL",
    "LLMRELAY_API_KEY",
)

VALID_YAML = """\
# llmrelay test config
default_model:
models:
  - name: gpt-test
    provider: openai
    base_url: http://127.0.0.1:9/v1
    api_key: sk-inline-secret-111
    max_parallel: 30
  - name: local
    provider: local
    max_tokens: 16
"""


def write(directory: Path, text: str, name: str = "config.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def config_error(
    tmp_path: Path, text: str, env: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """Load ``text`` as a config file that must be rejected; return (its path, the message)."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env or {})
    return str(path), str(caught.value)


# --- load_config: a valid file ---------------------------------------------------------------


def test_valid_config_with_openai_and_local_models(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID_YAML.replace("default_model:\n", "")), {})
    assert isinstance(config, Config)
    assert [spec.name for spec in config.specs] == ["gpt-test", "local"]
    assert config.default_model == "gpt-test"  # the first model when unset

    remote, local = config.specs
    assert isinstance(remote, OpenAISpec)
    assert remote.provider == "openai"
    assert remote.base_url == "http://127.0.0.1:9/v1"
    assert remote.api_key is not None
    assert remote.api_key.get_secret_value() == "sk-inline-secret-111"
    assert remote.max_parallel == 30
    assert remote.model is None
    assert remote.upstream_model == "gpt-test"  # `model` defaults to the name

    assert isinstance(local, LocalSpec)
    assert local.provider == "local"
    assert local.max_tokens == 16
    assert local.n_ctx == 8192
    assert local.upstream_model == "local"

    assert config.api_keys == []
    assert config.log_level == "info"


def test_explicit_default_model_and_upstream_model(tmp_path: Path) -> None:
    text = """\
default_model: alias
models:
  - name: first
    provider: local
  - name: alias
    provider: openai
    model: real-upstream-id
    api_keys_are_not_here: false
"""
    _, message = config_error(tmp_path, text)  # an unknown key inside a model...
    assert "models.1.openai.api_keys_are_not_here" in message

    config = load_config(
        write(tmp_path, text.replace("    api_keys_are_not_here: false\n", "")), {}
    )
    assert config.default_model == "alias"
    alias = config.specs[1]
    assert alias.model == "real-upstream-id"
    assert alias.upstream_model == "real-upstream-id"
    assert config.specs[0].upstream_model == "first"


# --- load_config: errors that name the key and its line ----------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path, message = config_error(tmp_path, "models:\n  - name: a\n    provider: local\nbogus: 1\n")
    assert f"{path}:4: bogus: Extra inputs are not permitted" in message


def test_unknown_top_level_key_after_comments(tmp_path: Path) -> None:
    path, message = config_error(
        tmp_path, "# a comment\n\nbogus: 1\nmodels:\n  - name: a\n    provider: local\n"
    )
    assert f"{path}:3: bogus:" in message


@pytest.mark.parametrize("value", ["", " http://127.0.0.1:9/v1"])
def test_typo_in_a_model_key(tmp_path: Path, value: str) -> None:
    text = f"models:\n  - name: a\n    provider: openai\n    base_ur:{value}\n    api_key: k\n"
    path, message = config_error(tmp_path, text)
    assert f"{path}:4: models.0.openai.base_ur: Extra inputs are not permitted" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "models:\n  - name: a\n    provider: openai\n    heders:\n      X-Team: infra\n",
            ":4: models.0.openai.heders:",
        ),
        (
            "models:\n  - name: a\n    provider: openai\n    weight: soon\n",
            ":4: models.0.openai.weight: Input should be a valid number",
        ),
        (
            "models:\n  - name: a\n    provider: openai\n    headers:\n      X-Team: [1]\n",
            ":5: models.0.openai.headers.X-Team: Input should be a valid string",
        ),
    ],
    ids=["typo-with-block-value", "wrong-type", "wrong-type-nested"],
)
def test_error_names_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path, message = config_error(tmp_path, text)
    assert f"{path}{expected}" in message


def test_every_error_is_listed(tmp_path: Path) -> None:
    text = (
        "log_level: loud\n"
        "models:\n"
        "  - name: a\n"
        "    provider: openai\n"
        "    weight: -1\n"
        "  - name: b\n"
        "    provider: local\n"
        "    temperature: 9\n"
    )
    path, message = config_error(tmp_path, text)
    assert message.startswith("invalid config\n")
    assert f"{path}:1: log_level:" in message
    assert f"{path}:5: models.0.openai.weight: Input should be greater than 0" in message
    assert f"{path}:8: models.1.local.temperature:" in message


def test_unknown_provider(tmp_path: Path) -> None:
    text = "models:\n  - name: a\n    provider: local\n  - name: b\n    provider: nope\n"
    path, message = config_error(tmp_path, text)
    # The error is on the entry (pydantic's discriminator), so its line is where the entry starts.
    assert f"{path}:4: models.1:" in message
    assert "'nope'" in message and "'provider'" in message


def test_missing_provider(tmp_path: Path) -> None:
    path, message = config_error(tmp_path, "models:\n  - name: a\n")
    assert f"{path}:2: models.0:" in message
    assert "'provider'" in message


def test_missing_name(tmp_path: Path) -> None:
    text = "models:\n  - name: a\n    provider: local\n  - provider: local\n    n_ctx: 64\n"
    path, message = config_error(tmp_path, text)
    assert f"{path}:4: models.1.local.name: Field required" in message


def test_empty_name(tmp_path: Path) -> None:
    path, message = config_error(tmp_path, 'models:\n  - name: ""\n    provider: local\n')
    assert f"{path}:2: models.0.local.name:" in message


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    text = "models:\n  - name: a\n    provider: local\n  - name: a\n    provider: openai\n"
    path, message = config_error(tmp_path, text)
    assert path in message
    assert f"{path}:1: models: model names must be unique: 'a' is both " in message
    assert "models.0 and models.1" in message


def test_default_model_must_be_configured(tmp_path: Path) -> None:
    text = "models:\n  - name: a\n    provider: local\ndefault_model: b\n"
    path, message = config_error(tmp_path, text)
    assert f"{path}:4: default_model: 'b' is not one of the configured models" in (message)


def test_empty_models_list(tmp_path: Path) -> None:
    path, message = config_error(tmp_path, "log_level: info\nmodels: []\n")
    assert f"{path}:2: models: List should have at least 1 item" in message


def test_missing_models(tmp_path: Path) -> None:
    path, message = config_error(tmp_path, "log_level: info\n")
    assert f"{path}:1: models: Field required" in message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "", "# only a comment\n"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    path, message = config_error(tmp_path, text)
    assert message == f"{path}: the config must be a mapping with a 'models' list"


def test_invalid_yaml(tmp_path: Path) -> None:
    path, message = config_error(tmp_path, "models:\n  - name: a\n   provider: [\n")
    assert message.startswith(f"{path}: not valid YAML:")
    assert "line 3" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert str(caught.value) == f"{path}: cannot read the config file: No such file or directory"


# --- api_key_env --------------------------------------------------------------------------------

KEY_ENV_YAML = """\
models:
  - name: local
    provider: local
  - name: remote
    provider: openai
    api_key_env: RELAY_TEST_KEY
"""


def test_api_key_env_is_read_from_the_given_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, KEY_ENV_YAML)
    config = load_config(path, {"RELAY_TEST_KEY": "sk-from-env-222"})
    spec = config.specs[1]
    assert isinstance(spec, OpenAISpec)
    assert spec.api_key is not None
    assert spec.api_key.get_secret_value() == "sk-from-env-222"


def test_api_key_env_ignores_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_TEST_KEY", "from-os-environ")
    path, message = config_error(tmp_path, KEY_ENV_YAML, env={})
    assert message == (
        f"{path}: models.1.api_key_env: the environment variable RELAY_TEST_KEY is not set"
    )


# --- no config file -----------------------------------------------------------------------------


def test_no_file_gives_the_local_model() -> None:
    config = load_config(None, {})
    assert [(s.name, s.provider) for s in config.specs] == [("local", "local")]
    assert config.default_model == "local"


def test_no_file_with_an_openai_key() -> None:
    config = load_config(None, {"OPENAI_API_KEY": "sk-default-333"})
    assert [(s.name, s.provider) for s in config.specs] == [
        ("gpt-4o-mini", "openai"),
        ("local", "local"),
    ]
    assert config.default_model == "gpt-4o-mini"
    spec = config.specs[0]
    assert isinstance(spec, OpenAISpec)
    assert spec.base_url == "https://api.openai.com/v1"
    assert spec.api_key is not None and spec.api_key.get_secret_value() == "sk-default-333"
    assert "sk-default-333" not in repr(config)


def test_no_file_honours_openai_base_url() -> None:
    env = {"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    spec = load_config(None, env).specs[0]
    assert isinstance(spec, OpenAISpec)
    assert spec.base_url == "http://127.0.0.1:9/v1"


def test_no_file_with_an_empty_openai_key() -> None:
    config = load_config(None, {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "http://x/v1"})
    assert [s.name for s in config.specs] == ["local"]


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_never_appear_in_the_config_text(tmp_path: Path) -> None:
    text = (
        VALID_YAML.replace("default_model:\n", "api_keys: [gw-secret-444]\n")
        + "  - name: by-env\n    provider: openai\n    api_key_env: RELAY_TEST_KEY\n"
    )
    config = load_config(write(tmp_path, text), {"RELAY_TEST_KEY": "sk-env-secret-555"})
    secrets = ["sk-inline-secret-111", "gw-secret-444", "sk-env-secret-555"]
    renderings = [
        str(config),
        repr(config),
        config.model_dump_json(),
        str(config.model_dump()),
        *(repr(spec) for spec in config.specs),
        *(spec.model_dump_json() for spec in config.specs),
    ]
    for rendering in renderings:
        for secret in secrets:
            assert secret not in rendering
    # ...and yet they are all there for the code that needs them.
    assert [k.get_secret_value() for k in config.api_keys] == ["gw-secret-444"]
    keys = [getattr(s, "api_key", None) for s in config.specs]
    assert [k.get_secret_value() for k in keys if k is not None] == secrets[::2]


# --- the command line ---------------------------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLI_VARIABLES}
    env.update(extra)
    return env


def llmrelay(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmrelay", *args],
        cwd=cwd,
        env=dict(env) if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def listed(stdout: str) -> list[tuple[str, str, str, str]]:
    """``llmrelay models`` output as (marker, name, provider, upstream model) rows."""
    rows = []
    for line in stdout.splitlines():
        name, provider, upstream = line[2:].split()
        rows.append((line[0], name, provider, upstream))
    return rows


def test_cli_version(tmp_path: Path) -> None:
    result = llmrelay("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"llmrelay {version('llmrelay')}"


def test_cli_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("llmrelay")
    if not script.exists():
        pytest.skip("no llmrelay console script next to this interpreter")
    result = subprocess.run(
        [str(script), "--version"], cwd=tmp_path, env=cli_env(), capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.startswith("llmrelay ")


def test_cli_needs_a_command(tmp_path: Path) -> None:
    result = llmrelay(cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: llmrelay" in result.stderr


def test_cli_models(tmp_path: Path) -> None:
    path = write(tmp_path, VALID_YAML.replace("default_model:\n", "default_model: local\n"))
    result = llmrelay("models", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert listed(result.stdout) == [
        (" ", "gpt-test", "openai", "gpt-test"),
        ("*", "local", "local", "local"),
    ]
    assert "sk-inline-secret-111" not in result.stdout + result.stderr


def test_cli_models_without_a_config(tmp_path: Path) -> None:
    result = llmrelay("models", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert listed(result.stdout) == [("*", "local", "local", "local")]


def test_cli_models_with_an_invalid_config(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - name: a\n    provider: openai\n    weight: soon\n")
    result = llmrelay("models", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("llmrelay: invalid config\n")
    assert f"{path}:4: models.0.openai.weight:" in result.stderr


def test_cli_models_with_a_missing_config(tmp_path: Path) -> None:
    result = llmrelay("models", "--config", "missing.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "missing.yaml: cannot read the config file" in result.stderr


def test_cli_config_from_llmrelay_config(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - name: from-env-var\n    provider: local\n")
    result = llmrelay("models", cwd=tmp_path, env=cli_env(LLMRELAY_CONFIG=str(path)))
    assert result.returncode == 0, result.stderr
    assert listed(result.stdout) == [("*", "from-env-var", "local", "from-env-var")]


def test_cli_config_option_wins_over_llmrelay_config(tmp_path: Path) -> None:
    chosen = write(tmp_path, "models:\n  - name: chosen\n    provider: local\n", "a.yaml")
    other = write(tmp_path, "models:\n  - name: other\n    provider: local\n", "b.yaml")
    env = cli_env(LLMRELAY_CONFIG=str(other))
    result = llmrelay("models", "--config", str(chosen), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert [row[1] for row in listed(result.stdout)] == ["chosen"]


def test_cli_reads_dotenv_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "OPENAI_API_KEY=sk-test\nOPENAI_BASE_URL=http://127.0.0.1:9/v1\n"
    )
    result = llmrelay("models", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert listed(result.stdout) == [
        ("*", "gpt-4o-mini", "openai", "gpt-4o-mini"),
        (" ", "local", "local", "local"),
    ]
    assert "sk-test" not in result.stdout


def test_cli_dotenv_can_name_the_config(tmp_path: Path) -> None:
    write(tmp_path, "models:\n  - name: dotenv-model\n    provider: local\n", "relay.yaml")
    (tmp_path / ".env").write_text("LLMRELAY_CONFIG=relay.yaml\n")
    result = llmrelay("models", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [row[1] for row in listed(result.stdout)] == ["dotenv-model"]


def test_cli_environment_wins_over_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-test\n")
    result = llmrelay("models", cwd=tmp_path, env=cli_env(OPENAI_API_KEY=""))
    assert result.returncode == 0, result.stderr
    assert [row[1] for row in listed(result.stdout)] == ["local"]


# --- llmrelay serve -----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com"])
def test_serve_refuses_a_public_host_without_api_keys(tmp_path: Path, host: str) -> None:
    port = free_port()
    result = llmrelay("serve", "--host", host, "--port", str(port), cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert "--insecure" in result.stderr
    assert f"refusing to serve on {host}" in result.stderr
    assert result.stdout == ""


def test_serve_with_an_invalid_config(tmp_path: Path) -> None:
    path = write(tmp_path, "models: []\n")
    result = llmrelay("serve", "--config", str(path), "--port", str(free_port()), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}:1: models:" in result.stderr


@pytest.fixture
def serve_config(tmp_path: Path, upstream: FakeUpstream) -> Path:
    config = {
        "models": [
            {
                "name": "relayed",
                "provider": "openai",
                "model": "fake-model",
                "base_url": upstream.base_url,
                "api_key": UPSTREAM_KEY,
            }
        ]
    }
    return write(tmp_path, yaml.safe_dump(config))


@pytest.fixture
def served(tmp_path: Path, serve_config: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    args = ["serve", "--config", str(serve_config), "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "llmrelay", *args],
        cwd=tmp_path,
        env=cli_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()


def wait_for_health(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llmrelay serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"llmrelay serve did not become healthy:\n{log.read_text()}")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_runs_and_stops(
    tmp_path: Path, served: tuple[subprocess.Popen[bytes], str], stop: signal.Signals
) -> None:
    process, url = served
    wait_for_health(process, url, tmp_path / "serve.log")
    with httpx.Client(base_url=url, timeout=30) as http:
        models = http.get("/v1/models")
        assert models.status_code == 200
        assert [card["id"] for card in models.json()["data"]] == ["relayed"]

        reply = http.post(
            "/v1/chat/completions",
            json={"model": "relayed", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == ANSWER

    process.send_signal(stop)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"llmrelay serve ignored {stop.name}")
    # A graceful shutdown; uvicorn may then re-raise the signal it caught, hence -signal.
    assert process.returncode in (0, -stop)
    log = (tmp_path / "serve.log").read_text()
    assert "Application shutdown complete" in log
    assert UPSTREAM_KEY not in log


# --- llmrelay chat ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [[], ["--no-stream"]], ids=["streamed", "whole"])
def test_chat(tmp_path: Path, gateway: Running, mode: list[str]) -> None:
    result = llmrelay("chat", "hi", "--url", gateway.url, *mode, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n"
    assert result.stderr == ""


def test_chat_with_system_model_and_key(tmp_path: Path, gateway: Running) -> None:
    args = ["--model", "aliased", "--system", "Be brief.", "--api-key", "anything"]
    result = llmrelay("chat", "hi", "--url", gateway.url + "/", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n"


def test_chat_url_from_llmrelay_url(tmp_path: Path, gateway: Running) -> None:
    result = llmrelay("chat", "hi", cwd=tmp_path, env=cli_env(LLMRELAY_URL=gateway.url))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n"


@pytest.mark.parametrize("mode", [[], ["--no-stream"]], ids=["streamed", "whole"])
def test_chat_upstream_error(tmp_path: Path, gateway: Running, mode: list[str]) -> None:
    result = llmrelay(
        "chat", "hi", "--url", gateway.url, "--model", "error-400", *mode, cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr == "llmrelay: Upstream says 400.\n"  # the message, not the JSON body
    assert result.stdout == ""


def test_chat_unknown_model(tmp_path: Path, gateway: Running) -> None:
    result = llmrelay("chat", "hi", "--url", gateway.url, "--model", "no-such-model", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "llmrelay: The model 'no-such-model' does not exist or you do not have access to it.\n"
    )


def test_chat_error_mid_stream(tmp_path: Path, gateway: Running) -> None:
    result = llmrelay(
        "chat", "hi", "--url", gateway.url, "--model", "midstream-error", cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr == "llmrelay: The model crashed.\n"
    assert result.stdout == "Hello from\n"  # what arrived before the error, then a newline


def test_chat_cannot_reach(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = llmrelay("chat", "hi", "--url", url, cwd=tmp_path, timeout=30)
    assert result.returncode == 1
    assert f"llmrelay: cannot reach {url}" in result.stderr
    assert result.stdout == ""


DEPLOYMENTS = """\
retry: {attempts: 5, initial_ms: 100}
timeouts: {connect: 3, idle: 20}
models:
  - name: smart
    deployments:
      - {provider: openai, base_url: "http://a/v1", api_key_env: KEY_A}
      - {provider: openai, base_url: "http://b/v1", weight: 2, max_parallel: 64, id: b}
    fallbacks: [cheap]
    routing: latency
    retry: {attempts: 2}
    timeouts: {first_byte: 60}
    cooldown: {failures: 4, seconds: 9}
  - name: cheap
    provider: openai
    base_url: "http://c/v1"
"""


def test_deployments_and_the_settings_each_model_inherits(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, DEPLOYMENTS), {"KEY_A": "sk-a"})
    smart, cheap = config.models
    first, second = smart.deployments
    assert [d.name for d in smart.deployments] == ["smart", "smart"]
    assert first.api_key is not None and first.api_key.get_secret_value() == "sk-a"
    assert (second.weight, second.max_parallel, second.id) == (2, 64, "b")
    assert (smart.fallbacks, smart.routing) == (["cheap"], "latency")
    # A model's own keys go over the top-level ones; the rest it inherits.
    assert smart.retry is not None and (smart.retry.attempts, smart.retry.initial_ms) == (2, 100)
    assert smart.timeouts is not None
    assert (smart.timeouts.first_byte, smart.timeouts.idle) == (60, 20)
    assert first.timeouts.connect == 3
    assert cheap.retry == config.retry and cheap.routing == "least_in_flight"
    assert cheap.cooldown is not None and cheap.cooldown.failures == 3
    assert [s.name for s in config.specs] == ["smart", "smart", "cheap"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "models:\n  - name: a\n    provider: openai\n    fallbacks: [b]\n",
            "models.0.fallbacks: 'b' is not another configured model",
        ),
        (
            "models:\n  - name: a\n    deployments:\n      - {provider: openai, timeouts: {}}\n",
            "timeouts are set on the model, for all of its deployments",
        ),
        (
            "models:\n  - name: a\n    provider: openai\n    routing: nearest\n",
            ":4: models.0.routing: Input should be 'weighted_random'",
        ),
        (
            "models:\n  - name: a\n    deployments:\n      - {provider: openai, weight: 0}\n",
            ":4: models.0.deployments.0.openai.weight: Input should be greater than 0",
        ),
    ],
    ids=["unknown-fallback", "deployment-timeouts", "bad-routing", "bad-weight"],
)
def test_bad_deployment_configs_are_named(tmp_path: Path, text: str, expected: str) -> None:
    _, message = config_error(tmp_path, text)
    assert expected in message
