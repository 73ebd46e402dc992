"""The gateway's YAML config: one file, validated once at start-up.

A bad config stops start-up with an error that names the key and its line, so
that nobody finds a typo by sending traffic.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .accounting.pricing import PriceSpec
from .cache import CacheSpec
from .jobs.settings import WEBHOOK_SECRET_ENV, JobsSpec, RedisURL
from .providers import PROVIDERS
from .providers.base import ModelSpec
from .providers.http import RemoteSpec
from .resilience.balancer import Routing
from .resilience.policy import Cooldown, Retry, Timeouts

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
MASTER_KEY_ENV = "LLMRELAY_MASTER_KEY"
LOCAL_MODEL = "local"


def _union(types: Sequence[type]) -> Any:
    union: Any = types[0]
    for t in types[1:]:
        union = union | t
    return union


if TYPE_CHECKING:
    AnyModelSpec = ModelSpec
else:
    # A union tagged by 'provider', built from the registry so each adapter owns its fields.
    AnyModelSpec = Annotated[
        _union([c.spec_type for c in PROVIDERS.values()]), Field(discriminator="provider")
    ]


# The keys of a model entry that belong to the model, not to one of its deployments.
MODEL_KEYS = frozenset(
    {"fallbacks", "routing", "retry", "timeouts", "cooldown", "fallback_on_content_filter"}
)


class ServedSpec(BaseModel):
    """One model name clients send, served by one or more deployments.

    An entry without ``deployments`` is a single deployment: its provider keys and
    the model's own keys sit side by side, as in ``{name, provider, base_url, retry}``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="The name clients send as 'model'.")
    deployments: list[AnyModelSpec] = Field(min_length=1)
    fallbacks: list[str] = Field(
        default_factory=list, description="Other model names to try, in order, when this fails."
    )
    routing: Routing = "least_in_flight"
    retry: Retry | None = Field(default=None, description="The top-level retry when unset.")
    timeouts: Timeouts | None = Field(default=None, description="The top-level ones when unset.")
    cooldown: Cooldown | None = Field(default=None, description="The top-level one when unset.")
    fallback_on_content_filter: bool = Field(
        default=False, description="Also fall back when the upstream filters the answer."
    )

    @model_validator(mode="before")
    @classmethod
    def _deployments(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "deployments" not in data:
            own = {k: v for k, v in data.items() if k in MODEL_KEYS}
            deployment = {k: v for k, v in data.items() if k not in MODEL_KEYS}
            return {**own, "name": data.get("name"), "deployments": [deployment]}
        deployments = data["deployments"]
        if isinstance(deployments, list):
            if any(isinstance(d, dict) and "timeouts" in d for d in deployments):
                raise ValueError("timeouts are set on the model, for all of its deployments")
            # Each deployment serves the model's name; 'model' still picks the upstream's id.
            name = data.get("name")
            named = [{**d, "name": name} if isinstance(d, dict) else d for d in deployments]
            return {**data, "deployments": named}
        return data


class InspectorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_kb: int = Field(default=32, gt=0, description="Of each body kept, when log_content is on.")
    retention_hours: float = Field(
        default=24, gt=0, description="How long a request's details are kept."
    )
    usage_days: float = Field(
        default=400, gt=0, description="How long a request's tokens and cost are kept."
    )


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ServedSpec] = Field(min_length=1)
    # After 'models', so that its validator can see them.
    default_model: str | None = Field(
        default=None, description="Used when a request omits 'model'; the first model if unset."
    )
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Gateway keys clients must send as a Bearer token. None means no auth.",
    )
    max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    retry: Retry = Field(default_factory=Retry)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    cooldown: Cooldown = Field(default_factory=Cooldown)
    data_dir: str = Field(
        default=".llmrelay", description="Where the gateway keeps its files, such as jobs.db."
    )
    jobs: JobsSpec = Field(default_factory=JobsSpec)
    master_key: SecretStr | None = Field(
        default=None,
        description=f"Manages virtual keys and sees all usage; or ${MASTER_KEY_ENV}. With it, "
        "every request needs a key.",
    )
    redis: RedisURL | None = Field(
        default=None,
        description="redis://...: shares rate limits, the cache and news of changed keys "
        "across gateway processes; jobs.redis defaults to it.",
    )
    cache: CacheSpec = Field(default_factory=CacheSpec)
    pricing: dict[str, PriceSpec] = Field(
        default_factory=dict,
        description="Prices per 1M tokens by model id, over the table shipped with llmrelay.",
    )
    log_format: Literal["json", "text"] = "json"
    log_content: bool = Field(
        default=False,
        description="Keep request and response bodies in the logs and the request inspector.",
    )
    inspector: InspectorSpec = Field(default_factory=InspectorSpec)
    otlp_endpoint: str | None = Field(
        default=None,
        description="Send OpenTelemetry traces to this OTLP/HTTP endpoint, such as "
        "http://collector:4318; none are made when unset.",
    )

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ServedSpec]) -> list[ServedSpec]:
        seen: dict[str, int] = {}
        for index, spec in enumerate(models):
            if spec.name in seen:
                raise ValueError(
                    f"model names must be unique: '{spec.name}' is both "
                    f"models.{seen[spec.name]} and models.{index}"
                )
            seen[spec.name] = index
        for index, spec in enumerate(models):
            for name in spec.fallbacks:
                if name not in seen or name == spec.name:
                    raise ValueError(
                        f"models.{index}.fallbacks: '{name}' is not another configured model"
                    )
        return models

    @field_validator("default_model")
    @classmethod
    def _known_default(cls, name: str | None, info: ValidationInfo) -> str | None:
        models: list[ServedSpec] = info.data.get("models") or []
        if name is not None and models and name not in {m.name for m in models}:
            raise ValueError(f"'{name}' is not one of the configured models")
        return name

    @model_validator(mode="after")
    def _settle(self) -> Config:
        if self.cache.enabled and self.cache.store == "redis" and self.redis is None:
            raise ValueError("cache.store is redis: set the top-level 'redis' URL")
        if self.jobs.redis is None:
            self.jobs.redis = self.redis
        if self.default_model is None:
            self.default_model = self.models[0].name
        for model in self.models:
            model.retry = _over(self.retry, model.retry)
            model.timeouts = _over(self.timeouts, model.timeouts)
            model.cooldown = _over(self.cooldown, model.cooldown)
            for spec in model.deployments:
                spec.timeouts = model.timeouts
        return self

    @property
    def kept_bytes(self) -> int:
        """Of each body the request inspector keeps: none unless ``log_content`` is on."""
        return self.inspector.max_kb * 1024 if self.log_content else 0

    @property
    def specs(self) -> list[ModelSpec]:
        """Every deployment's spec, model by model."""
        return [spec for model in self.models for spec in model.deployments]


S = TypeVar("S", bound=BaseModel)


def _over(default: S, own: S | None) -> S:
    """The top-level settings with the keys a model set for itself put over them."""
    if own is None:
        return default
    return default.model_copy(update={k: getattr(own, k) for k in own.model_fields_set})


class ConfigError(Exception):
    """The config file is missing, unreadable or invalid. The message says where."""


def load_config(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Config:
    """Load the config from ``path``, or build the default one when there is no file."""
    if path is None:
        return _secrets_env(Config.model_validate(default_config_data(env)), env)
    source = Path(path)
    try:
        text = source.read_text()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the config file: {exc.strerror}") from exc
    try:
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a mapping with a 'models' list")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{source}:{_line_of(tree, err['loc'])}: {_dotted(_as_written(data, err['loc']))}: "
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        ]
        raise ConfigError("invalid config\n  " + "\n  ".join(lines)) from None
    _resolve_key_env(config, env, source)
    return _secrets_env(config, env)


def _secrets_env(config: Config, env: Mapping[str, str]) -> Config:
    """The secrets the environment gives, where the file gives none."""
    if config.jobs.webhook_secret is None and env.get(WEBHOOK_SECRET_ENV):
        config.jobs.webhook_secret = SecretStr(env[WEBHOOK_SECRET_ENV])
    if config.master_key is None and env.get(MASTER_KEY_ENV):
        config.master_key = SecretStr(env[MASTER_KEY_ENV])
    return config


def default_config_data(env: Mapping[str, str]) -> dict[str, Any]:
    """No config file: the embedded model, plus gpt-4o-mini as the default when a key is set."""
    models: list[dict[str, Any]] = [{"name": LOCAL_MODEL, "provider": "local"}]
    data: dict[str, Any] = {"models": models, "default_model": LOCAL_MODEL}
    if env.get("OPENAI_API_KEY"):
        openai: dict[str, Any] = {
            "name": DEFAULT_OPENAI_MODEL,
            "provider": "openai",
            "api_key": env["OPENAI_API_KEY"],
        }
        if env.get("OPENAI_BASE_URL"):
            openai["base_url"] = env["OPENAI_BASE_URL"]
        models.insert(0, openai)
        data["default_model"] = DEFAULT_OPENAI_MODEL
    return data


def _resolve_key_env(config: Config, env: Mapping[str, str], source: Path) -> None:
    """Read each model's key variable once, here, so that adapters never touch the environment.

    ``api_key_env`` must be set when given; a provider's default variable is read
    only when the entry has no key of its own, and must be set only when the
    provider cannot work without a key.
    """
    for index, spec in enumerate(config.specs):
        if not isinstance(spec, RemoteSpec):
            continue
        var = spec.api_key_env or (None if spec.api_key else spec.default_key_env)
        if var is not None and var in env:
            spec.api_key = SecretStr(env[var])
        elif spec.api_key_env:
            raise ConfigError(
                f"{source}: models.{index}.api_key_env: the environment variable {var} is not set"
            )
        elif spec.key_required and spec.api_key is None:
            raise ConfigError(
                f"{source}: models.{index}: provider '{spec.provider}' needs a key: "
                f"set {var} or give api_key or api_key_env"
            )


def _as_written(data: dict[str, Any], loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """An error's location as the file has it: a single-deployment entry has no
    ``deployments`` list of its own."""
    if len(loc) > 3 and loc[0] == "models" and loc[2] == "deployments":
        entries = data.get("models")
        index = loc[1]
        if isinstance(entries, list) and isinstance(index, int) and index < len(entries):
            entry = entries[index]
            if isinstance(entry, dict) and "deployments" not in entry:
                return (*loc[:2], *loc[4:])
    return loc


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of the deepest YAML node that ``loc`` reaches.

    Path parts that are not in the document (such as the provider tag pydantic
    inserts for a tagged union) are skipped rather than ending the walk.
    """
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        key: yaml.Node | None = None
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            key, child = next(((k, v) for k, v in node.value if k.value == part), (None, None))
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            continue
        node = child
        # A key's own line, not its value's, which may start on the next line.
        line = (key or child).start_mark.line + 1
    return line
