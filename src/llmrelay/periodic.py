"""Work done every so many seconds for as long as the gateway runs, such as removing old
records or looking for changes that no message told of."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(
    seconds: float, work: Callable[[], Awaitable[object]], what: str, *, at_once: bool = False
) -> None:
    """Do ``work`` every ``seconds`` (the first time at once, or after ``seconds``) until
    cancelled. A failure is logged, and the next round comes as usual."""
    if not at_once:
        await asyncio.sleep(seconds)
    while True:
        try:
            await work()
        except Exception:
            log.exception("%s failed; trying again in %g s", what, seconds)
        await asyncio.sleep(seconds)
