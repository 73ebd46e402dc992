"""Token prices: a table shipped with the gateway, with its as-of date, under the prices the
config gives."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field

from ..trace import Usage

PER = 1_000_000  # prices are per million tokens
TABLE = "data/pricing.json"


class PriceSpec(BaseModel):
    """A model's prices in USD per million tokens, as the config gives them."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached: float | None = Field(default=None, ge=0, description="Cached input; else input.")


@dataclass(frozen=True, slots=True)
class Price:
    input: float
    output: float
    cached: float

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        fresh = usage.prompt_tokens - cached
        return (
            fresh * self.input + cached * self.cached + usage.completion_tokens * self.output
        ) / PER


FREE = Price(0.0, 0.0, 0.0)


class Pricing:
    def __init__(self, overrides: Mapping[str, PriceSpec]) -> None:
        table = json.loads(resources.files("llmrelay").joinpath(TABLE).read_text())
        self.as_of: str = table["as_of"]
        self.source: str = table["source"]
        self.prices = {name: _price(entry) for name, entry in table["models"].items()}
        self.prices.update({name: _price(spec.model_dump()) for name, spec in overrides.items()})

    def find(self, *names: str) -> Price | None:
        """The price of the first of ``names`` that has one: an upstream's model id, then the
        name clients send."""
        for name in names:
            price = self.prices.get(name)
            if price is not None:
                return price
        return None


def _price(entry: Mapping[str, float | None]) -> Price:
    given = entry.get("input") or 0.0
    cached = entry.get("cached")
    return Price(
        float(given), float(entry.get("output") or 0.0), float(given if cached is None else cached)
    )
