"""Requests and tokens per minute for each key, counted in minute-long windows: in this
process, or in Redis so that every gateway process shares the count.

A request is admitted while its key's window has requests and tokens left; the
tokens a request used are charged to the window when it ends, since they are
known only then. Over a limit, the reply is OpenAI's: a 429 with ``Retry-After``
and the ``x-ratelimit-*`` headers, which admitted requests carry too.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

import redis.asyncio as redis

from ..errors import RateLimited
from .key import VirtualKey

WINDOW = 60  # seconds
Headers = list[tuple[bytes, bytes]]


class Limiter(Protocol):
    async def admit(self, key: VirtualKey) -> Headers:
        """Count a request against ``key``'s window and return its rate-limit headers, or
        raise ``RateLimited`` when the window has no requests or tokens left."""
        ...

    async def charge(self, key: VirtualKey, tokens: int) -> None:
        """Add the tokens a request used to its key's window."""
        ...

    async def close(self) -> None: ...


def _window(now: float) -> tuple[int, float]:
    """The current window's number, and the seconds until it ends."""
    number = int(now // WINDOW)
    return number, (number + 1) * WINDOW - now


def _verdict(key: VirtualKey, requests: int, tokens: int, left: float) -> Headers:
    reset = f"{math.ceil(left)}s".encode()
    headers: Headers = []
    over = []
    if key.rpm is not None:
        headers += [
            (b"x-ratelimit-limit-requests", str(key.rpm).encode()),
            (b"x-ratelimit-remaining-requests", str(max(0, key.rpm - requests)).encode()),
            (b"x-ratelimit-reset-requests", reset),
        ]
        if requests > key.rpm:
            over.append(f"{key.rpm} requests")
    if key.tpm is not None:
        headers += [
            (b"x-ratelimit-limit-tokens", str(key.tpm).encode()),
            (b"x-ratelimit-remaining-tokens", str(max(0, key.tpm - tokens)).encode()),
            (b"x-ratelimit-reset-tokens", reset),
        ]
        if tokens >= key.tpm:
            over.append(f"{key.tpm} tokens")
    if over:
        raise RateLimited(
            f"Rate limit reached for key '{key.name}': {' and '.join(over)} per minute. "
            f"Try again in {math.ceil(left)} s.",
            headers={
                "retry-after": str(math.ceil(left)),
                **{name.decode(): value.decode() for name, value in headers},
            },
        )
    return headers


class MemoryLimiter:
    """Windows in this process: each gateway process counts on its own."""

    def __init__(self) -> None:
        # key id -> [window number, requests, tokens]
        self._windows: dict[str, list[int]] = {}

    def _current(self, key: VirtualKey, number: int) -> list[int]:
        window = self._windows.get(key.id)
        if window is None or window[0] != number:
            window = self._windows[key.id] = [number, 0, 0]
        return window

    async def admit(self, key: VirtualKey) -> Headers:
        number, left = _window(time.time())
        window = self._current(key, number)
        window[1] += 1
        try:
            return _verdict(key, window[1], window[2], left)
        except RateLimited:
            window[1] -= 1  # a refused request uses nothing
            raise

    async def charge(self, key: VirtualKey, tokens: int) -> None:
        number, _ = _window(time.time())
        self._current(key, number)[2] += tokens

    async def close(self) -> None:
        pass


class RedisLimiter:
    """Windows in Redis, counted atomically, shared by every process that uses it."""

    def __init__(self, url: str) -> None:
        self._redis = redis.from_url(url)

    @staticmethod
    def _name(key: VirtualKey, number: int) -> str:
        return f"llmrelay:limits:{key.id}:{number}"

    async def admit(self, key: VirtualKey) -> Headers:
        number, left = _window(time.time())
        name = self._name(key, number)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(name, "requests", 1)
            pipe.hget(name, "tokens")
            pipe.expire(name, 2 * WINDOW)
            requests, tokens, _ = await pipe.execute()
        try:
            return _verdict(key, int(requests), int(tokens or 0), left)
        except RateLimited:
            await self._redis.hincrby(name, "requests", -1)  # a refused request uses nothing
            raise

    async def charge(self, key: VirtualKey, tokens: int) -> None:
        number, _ = _window(time.time())
        name = self._name(key, number)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(name, "tokens", tokens)
            pipe.expire(name, 2 * WINDOW)
            await pipe.execute()

    async def close(self) -> None:
        await self._redis.aclose()


def open_limiter(redis_url: str | None) -> Limiter:
    return RedisLimiter(redis_url) if redis_url else MemoryLimiter()
