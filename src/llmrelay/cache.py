"""The response cache: whole chat answers to deterministic requests, served again to the
same request until their time is up.

A request is cached when it is deterministic (temperature 0, or a seed) or asks
to be with ``"cache": true``. Its entry is keyed by everything that shapes the
answer, the model and any system prompt the gateway injected included, and not
by whether it streams: a streamed request is answered from a whole answer
replayed as a stream, and a streamed answer is stored whole.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Literal, Protocol

import orjson
import redis.asyncio as redis
from pydantic import BaseModel, ConfigDict, Field

from .database import Database
from .schemas import ChatCompletionRequest, JSONObject

# Fields that do not change the answer.
_NOT_KEYED = {"stream", "stream_options", "cache", "user", "metadata"}


class CacheSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=False, description="Answer repeated requests from the cache.")
    store: Literal["memory", "database", "redis"] = Field(
        default="memory",
        description="This process's memory, the gateway's database, or Redis (the top-level "
        "'redis' URL).",
    )
    ttl_seconds: float = Field(default=300, gt=0)
    max_entries: int = Field(default=10_000, gt=0, description="For the memory store.")


class ResponseCache(Protocol):
    async def get(self, key: str) -> JSONObject | None: ...

    async def put(self, key: str, reply: JSONObject) -> None: ...

    async def close(self) -> None: ...


def wanted(request: ChatCompletionRequest, opted_in: bool) -> bool:
    return opted_in or request.temperature == 0 or request.seed is not None


def key_of(request: ChatCompletionRequest) -> str:
    fields = request.model_dump(mode="json", exclude_none=True, by_alias=True)
    keyed = {k: v for k, v in fields.items() if k not in _NOT_KEYED}
    return hashlib.sha256(orjson.dumps(keyed, option=orjson.OPT_SORT_KEYS)).hexdigest()


class MemoryCache:
    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, JSONObject]] = OrderedDict()

    async def get(self, key: str) -> JSONObject | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def put(self, key: str, reply: JSONObject) -> None:
        self._entries[key] = (time.monotonic() + self.ttl, reply)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()


class DatabaseCache:
    GET = "SELECT body FROM cached_replies WHERE key = ? AND expires_at > ?"
    PUT = (
        "INSERT INTO cached_replies (key, expires_at, body) VALUES (?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, body = excluded.body"
    )
    PURGE = "DELETE FROM cached_replies WHERE expires_at < ?"

    def __init__(self, database: Database, ttl: float) -> None:
        self.database = database
        self.ttl = ttl
        self._puts = 0

    async def get(self, key: str) -> JSONObject | None:
        rows = await self.database.rows(self.GET, key, time.time())
        return orjson.loads(rows[0][0]) if rows else None

    async def put(self, key: str, reply: JSONObject) -> None:
        now = time.time()
        await self.database.changed(self.PUT, key, now + self.ttl, orjson.dumps(reply))
        self._puts += 1
        if self._puts % 1000 == 0:  # expired entries go now and then, as new ones come
            await self.database.changed(self.PURGE, now)

    async def close(self) -> None:
        pass


class RedisCache:
    def __init__(self, url: str, ttl: float) -> None:
        self._redis = redis.from_url(url)
        self.ttl = ttl

    async def get(self, key: str) -> JSONObject | None:
        body = await self._redis.get(f"llmrelay:cache:{key}")
        return orjson.loads(body) if body is not None else None

    async def put(self, key: str, reply: JSONObject) -> None:
        await self._redis.set(f"llmrelay:cache:{key}", orjson.dumps(reply), px=int(self.ttl * 1000))

    async def close(self) -> None:
        await self._redis.aclose()


def open_cache(spec: CacheSpec, database: Database, redis_url: str | None) -> ResponseCache | None:
    if not spec.enabled:
        return None
    if spec.store == "redis":
        assert redis_url is not None, "the config refuses a Redis cache without a Redis URL"
        return RedisCache(redis_url, spec.ttl_seconds)
    if spec.store == "database":
        return DatabaseCache(database, spec.ttl_seconds)
    return MemoryCache(spec.ttl_seconds, spec.max_entries)
