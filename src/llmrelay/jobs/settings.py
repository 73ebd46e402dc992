"""The ``jobs`` section of the config."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

from ..database import is_postgres

WEBHOOK_SECRET_ENV = "LLMRELAY_WEBHOOK_SECRET"


def _redis_url(url: str) -> str:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return url


RedisURL = Annotated[str, AfterValidator(_redis_url)]


class JobsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store: str | None = Field(
        default=None,
        description="sqlite:///path/jobs.db or postgresql://...; when unset, jobs.db in the "
        "data directory.",
    )
    redis: RedisURL | None = Field(
        default=None,
        description="redis://...: wakes workers and pushes job updates across processes. "
        "Without it, a PostgreSQL store does this with LISTEN/NOTIFY.",
    )
    workers: int = Field(
        default=2, ge=0, description="Workers in each serving process; 0 only accepts jobs."
    )
    ttl_hours: float = Field(default=24, gt=0, description="How long ended jobs are kept.")
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="Answers asked of the model per job, and times a job may be taken up "
        "again after its worker was lost.",
    )
    lease_seconds: float = Field(
        default=15,
        gt=0,
        description="How long a lost worker's job waits before another worker takes it.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description=f"Signs webhooks (HMAC-SHA256); or ${WEBHOOK_SECRET_ENV}. Jobs with a "
        "webhook_url are refused without it.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks reach loopback, private and link-local addresses.",
    )
    webhook_attempts: int = Field(
        default=6, ge=1, description="Tries to send a webhook, 1, 2, 4... seconds apart."
    )

    @field_validator("store")
    @classmethod
    def _known_store(cls, url: str | None) -> str | None:
        if url is not None and not (url.startswith("sqlite:///") or is_postgres(url)):
            raise ValueError("the job store must be sqlite:///path/jobs.db or postgresql://...")
        return url

    def store_url(self, data_dir: str) -> str:
        return self.store or f"sqlite:///{data_dir}/jobs.db"
