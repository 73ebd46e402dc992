"""Usage over time: requests, tokens, cost and latency percentiles per time bucket and per
model or key, as the playground's charts draw them.

Percentiles are not an SQL aggregate in SQLite, so the rows are summed here, on
the database's thread; a range holds at most ``MAX_ROWS`` of the newest records.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

By = Literal["model", "key"]
COLUMNS = {"model": "model", "key": "key_id"}
MAX_ROWS = 100_000
PERCENTILES = (50, 95, 99)


def select(by: By, clause: str) -> str:
    return (
        f"SELECT created_at, {COLUMNS[by]}, status, prompt_tokens, completion_tokens, cost,"
        f" total_ms FROM requests{clause} ORDER BY created_at DESC LIMIT ?"
    )


@dataclass
class _Bucket:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def add(self, status: int, prompt: int, completion: int, cost: float, ms: float | None) -> None:
        self.requests += 1
        self.errors += status >= 400
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cost += cost
        if ms is not None:
            self.latencies.append(ms)

    def view(self, start: int, group: str | None) -> dict[str, Any]:
        self.latencies.sort()
        return {
            "start": start,
            "group": group,
            "requests": self.requests,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": round(self.cost, 8),
            "latency_ms": {f"p{p}": _percentile(self.latencies, p) for p in PERCENTILES},
        }


def series(rows: Iterable[Any], bucket: int) -> list[dict[str, Any]]:
    """Rows of ``select`` summed per bucket and group, oldest bucket first."""
    buckets: dict[tuple[int, str | None], _Bucket] = {}
    for created_at, group, status, prompt, completion, cost, ms in rows:
        start = int(created_at // bucket) * bucket
        found = buckets.get((start, group))
        if found is None:
            found = buckets[start, group] = _Bucket()
        found.add(status, prompt, completion, float(cost), ms)
    ordered = sorted(buckets.items(), key=lambda item: (item[0][0], item[0][1] or ""))
    return [b.view(start, group) for (start, group), b in ordered]


def _percentile(ordered: list[float], p: int) -> float | None:
    """The nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 3)
