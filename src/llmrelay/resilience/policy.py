"""The resilience settings a model takes, each also settable once at the top level of the
config as the default for every model."""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retry(_Settings):
    """Exponential backoff with jitter. A delay the upstream asks for wins over it."""

    attempts: int = Field(default=3, ge=1, description="Tries in all, the first included.")
    initial_ms: float = Field(default=200, ge=0)
    factor: float = Field(default=2, ge=1)
    jitter: float = Field(default=0.1, ge=0, lt=1, description="Plus or minus this fraction.")
    max_ms: float = Field(default=30_000, ge=0)

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        base = min(self.initial_ms * self.factor ** (retry - 1), self.max_ms)
        return base * random.uniform(1 - self.jitter, 1 + self.jitter) / 1000


class Timeouts(_Settings):
    """Seconds. A client can lower each of them for one request with the
    ``x-llmrelay-timeout-*`` headers, never raise them."""

    connect: float = Field(default=10, gt=0)
    first_byte: float = Field(
        default=600,
        gt=0,
        description="Until the upstream starts its reply: its first streamed bytes, or, "
        "for a whole reply, the reply itself.",
    )
    idle: float = Field(default=60, gt=0, description="Between a stream's reads.")
    total: float = Field(default=600, gt=0, description="For the whole request, retries included.")

    def lowered(self, asked: dict[str, float]) -> Timeouts:
        """These timeouts, each lowered to what the client asked for, if it asked for less."""
        if not asked:
            return self
        lower = {k: v for k, v in asked.items() if v < getattr(self, k)}
        return self.model_copy(update=lower) if lower else self


class Cooldown(_Settings):
    """After ``failures`` failures in a row, a deployment rests for ``seconds``; then one
    request probes it."""

    failures: int = Field(default=3, ge=1)
    seconds: float = Field(default=30, ge=0)
