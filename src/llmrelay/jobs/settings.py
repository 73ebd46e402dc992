"""The ``jobs`` section of the config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class JobsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store: str | None = Field(
        default=None,
        description="sqlite:///path/jobs.db; when unset, jobs.db in the data directory.",
    )
    workers: int = Field(default=2, ge=0, description="Workers in each serving process.")
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

    @field_validator("store")
    @classmethod
    def _known_store(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith("sqlite:///"):
            raise ValueError("only SQLite job stores (sqlite:///path/jobs.db) are supported so far")
        return url

    def store_url(self, data_dir: str) -> str:
        return self.store or f"sqlite:///{data_dir}/jobs.db"
