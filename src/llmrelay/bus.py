"""How the processes that share a database tell each other what happened: a job was
submitted, changed, ended or cancelled, or a key was changed or revoked.

Within one process a message is heard at once. Across processes it travels
through PostgreSQL's LISTEN/NOTIFY or Redis pub/sub, so that a worker wakes for
a job submitted through any gateway, a client watching a job through one
gateway is pushed the progress made by a worker anywhere, and a key revoked
through one gateway stops working on all of them. Messages can be lost
(a dropped connection, a restart), so listeners still look at the store every
``poll`` seconds; with SQLite alone, that look is how processes see each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Literal, Protocol, cast

import psycopg
import redis.asyncio as redis

from .database import is_postgres

log = logging.getLogger(__name__)

# Each message is a kind and the id of the job, or key, it is about.
Kind = Literal["submitted", "changed", "ended", "cancelled", "key"]
Heard = Callable[[Kind, str], None]
Send = Callable[[str], Awaitable[None]]
KINDS: frozenset[str] = frozenset({"submitted", "changed", "ended", "cancelled", "key"})
CHANNEL = "llmrelay"
RECONNECT_AFTER = 1.0  # seconds
# Messages held while a connection is down; past this, new ones are dropped, and the look
# at the store makes up for them.
OUTBOX = 10_000


class Bus(Protocol):
    poll: float  # seconds between looks at the store, for what no message told

    def listen(self, heard: Heard) -> None:
        """Have ``heard`` told every message, from now on."""
        ...

    async def open(self) -> None: ...

    def publish(self, kind: Kind, about: str) -> None:
        """Tell every process, this one at once; never waits."""
        ...

    async def close(self) -> None: ...


class LocalBus:
    """Messages for this process only."""

    poll = 0.5

    def __init__(self) -> None:
        self._listeners: list[Heard] = []

    def listen(self, heard: Heard) -> None:
        self._listeners.append(heard)

    async def open(self) -> None:
        pass

    def publish(self, kind: Kind, about: str) -> None:
        for heard in self._listeners:
            heard(kind, about)

    async def close(self) -> None:
        self._listeners.clear()


class _Relayed(LocalBus):
    """A bus whose messages also go out over one connection, sent in order by one task, and
    come in over another; each process skips its own messages as they come back."""

    poll = 2.0

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.origin = secrets.token_hex(6)
        self._outbox: asyncio.Queue[str] = asyncio.Queue(OUTBOX)
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()

    async def open(self) -> None:
        self._tasks = [
            asyncio.create_task(self._keep(self._send_all)),
            asyncio.create_task(self._keep(self._listen_all)),
        ]
        # What is sent before this process listens passes it by; wait for that, briefly.
        try:
            await asyncio.wait_for(self._listening.wait(), 5)
        except TimeoutError:
            log.warning("the bus is not listening yet; going on, looking at the store")

    def publish(self, kind: Kind, about: str) -> None:
        super().publish(kind, about)
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(f"{self.origin} {kind} {about}")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().close()

    async def _keep(self, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run`` again when its connection fails; the messages lost meanwhile are
        made up for by the look at the store."""
        while True:
            try:
                await run()
            except Exception as exc:
                log.warning("the bus lost its connection (%s); reconnecting", exc)
            await asyncio.sleep(RECONNECT_AFTER)

    async def _send_all(self) -> None:
        async with self._sender() as send:
            while True:
                await send(await self._outbox.get())

    async def _listen_all(self) -> None:
        async for message in self._messages():
            origin, kind, about = message.split(" ", 2)
            if origin != self.origin and kind in KINDS:
                for heard in self._listeners:
                    heard(cast(Kind, kind), about)

    def _sender(self) -> AbstractAsyncContextManager[Send]:
        raise NotImplementedError

    def _messages(self) -> AsyncIterator[str]:
        """Messages as they come, once listening (when ``_listening`` is set)."""
        raise NotImplementedError


class PostgresBus(_Relayed):
    """Messages through LISTEN/NOTIFY on the gateway's own database."""

    @asynccontextmanager
    async def _sender(self) -> AsyncIterator[Send]:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as db:

            async def send(message: str) -> None:
                await db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, message))

            yield send

    async def _messages(self) -> AsyncIterator[str]:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as db:
            await db.execute(f"LISTEN {CHANNEL}")
            self._listening.set()
            async for notice in db.notifies():
                yield notice.payload


class RedisBus(_Relayed):
    """Messages through Redis pub/sub."""

    @asynccontextmanager
    async def _sender(self) -> AsyncIterator[Send]:
        client = redis.from_url(self.url)
        try:

            async def send(message: str) -> None:
                await client.publish(CHANNEL, message)

            yield send
        finally:
            await client.aclose()

    async def _messages(self) -> AsyncIterator[str]:
        client = redis.from_url(self.url)
        listener = client.pubsub(ignore_subscribe_messages=True)
        try:
            await listener.subscribe(CHANNEL)
            self._listening.set()
            async for item in listener.listen():
                yield item["data"].decode()
        finally:
            await listener.aclose()  # type: ignore[no-untyped-call]  # redis leaves it bare
            await client.aclose()


def open_bus(database_url: str, redis_url: str | None) -> Bus:
    """Redis when it is configured, else the PostgreSQL database, else this process alone."""
    if redis_url is not None:
        return RedisBus(redis_url)
    if is_postgres(database_url):
        return PostgresBus(database_url)
    return LocalBus()
