"""Choosing a deployment for the next attempt, by the model's routing strategy."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Literal

from .deployment import Deployment

Routing = Literal["weighted_random", "least_in_flight", "latency"]
Choose = Callable[[Sequence[Deployment]], Deployment]


def weighted_random(candidates: Sequence[Deployment]) -> Deployment:
    return random.choices(candidates, weights=[d.weight for d in candidates])[0]


def least_in_flight(candidates: Sequence[Deployment]) -> Deployment:
    """The one with the fewest requests in flight for its weight; ties go at random, so
    that idle deployments share the load."""
    load = min(d.in_flight / d.weight for d in candidates)
    return random.choice([d for d in candidates if d.in_flight / d.weight == load])


def latency(candidates: Sequence[Deployment]) -> Deployment:
    """Power of two choices: of two drawn by weight, the one with the lower latency average.
    Drawing two rather than taking the fastest keeps a slow one from being starved of the
    samples that would show it has recovered."""
    if len(candidates) == 1:
        return candidates[0]
    first, second = random.choices(candidates, weights=[d.weight for d in candidates], k=2)
    return first if first.latency <= second.latency else second


STRATEGIES: dict[Routing, Choose] = {
    "weighted_random": weighted_random,
    "least_in_flight": least_in_flight,
    "latency": latency,
}


def choose(
    deployments: Sequence[Deployment], strategy: Choose, now: float, avoid: Deployment | None
) -> Deployment | None:
    """The deployment for the next attempt, or None when every one is resting.

    Those with a free slot come first; ``avoid`` (the one that just failed) is taken only
    when nothing else is available.
    """
    # Most models have one deployment, and every request asks: skip the lists for it.
    if len(deployments) == 1:
        return deployments[0] if deployments[0].available(now) else None
    available = [d for d in deployments if d.available(now)]
    if len(available) > 1 and avoid in available:
        available.remove(avoid)
    if not available:
        return None
    with_room = [d for d in available if d.has_room]
    return strategy(with_room or available)
