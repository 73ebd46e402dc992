"""A virtual key: its secret, shown once and stored only as a hash, and what it allows."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PREFIX = "sk-relay-"
Period = Literal["day", "month"]


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(secret: bytes) -> str:
    """What is stored of a key. A fast hash suits: the secrets are 256 random bits, with
    nothing to guess."""
    return hashlib.sha256(secret).hexdigest()


class KeyFields(BaseModel):
    """What a key allows: the body of ``POST /admin/keys``, and of ``PATCH`` in part."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    models: list[str] | None = Field(
        default=None, description="The model names it may use; all when unset."
    )
    rpm: int | None = Field(default=None, gt=0, description="Requests per minute.")
    tpm: int | None = Field(default=None, gt=0, description="Tokens per minute.")
    budget_usd: float | None = Field(default=None, ge=0, description="Spend per period.")
    budget_period: Period = "month"
    system_prompt: str | None = Field(
        default=None,
        description="Put before every chat request. With {system} in it, the client's own "
        "system prompt takes that place instead of following it.",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class KeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    models: list[str] | None = None
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    budget_usd: float | None = Field(default=None, ge=0)
    budget_period: Period | None = None
    system_prompt: str | None = None
    metadata: dict[str, Any] | None = None


class VirtualKey(KeyFields):
    id: str
    hint: str = Field(description="The key's first and last characters, to tell keys apart.")
    created_at: float = Field(default_factory=time.time)
    revoked_at: float | None = None

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models

    def public(self) -> dict[str, Any]:
        return {"object": "api_key", **self.model_dump()}


def hint(secret: str) -> str:
    return f"{secret[: len(PREFIX) + 4]}...{secret[-4:]}"
