"""Every virtual key, stored in the database and held in each gateway process, so that
checking the key of a request costs a hash and a dict lookup rather than a query.

A change made through one process is told to the others over the bus at once; a
revoked key is dropped on hearing so, before its record is read again. Each
process also looks at the newest change in the table every ``POLL`` seconds, for
messages that were lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

import orjson

from ..bus import Bus, Kind
from ..database import Database
from ..errors import NotFound
from ..periodic import every
from .key import PREFIX, KeyFields, KeyUpdate, VirtualKey, digest, hint, new_secret

log = logging.getLogger(__name__)

POLL = 5.0  # seconds
_COLUMNS = "id, hash, created_at, revoked_at, body"
INSERT = (
    "INSERT INTO api_keys (id, hash, created_at, updated_at, revoked_at, body)"
    " VALUES (?, ?, ?, ?, NULL, ?)"
)
LIVE = f"SELECT {_COLUMNS} FROM api_keys WHERE revoked_at IS NULL"
BY_ID = f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?"
ALL = f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at DESC"
UPDATE = "UPDATE api_keys SET body = ?, updated_at = ? WHERE id = ? AND revoked_at IS NULL"
REVOKE = "UPDATE api_keys SET revoked_at = ?, updated_at = ? WHERE id = ? AND revoked_at IS NULL"
NEWEST = "SELECT max(updated_at) FROM api_keys"


class KeyNotFound(NotFound):
    default_code = "key_not_found"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"No key with id '{key_id[:60]}'.", param="id")


class KeyRing:
    def __init__(self, database: Database, bus: Bus) -> None:
        self.database = database
        self.bus = bus
        self._by_hash: dict[str, VirtualKey] = {}
        self._newest: float | None = None
        self._task: asyncio.Task[None] | None = None
        # Counts the changes made to the ring, so that a full read overtaken by one is redone.
        self._changes = 0

    async def start(self) -> None:
        self.bus.listen(self._heard)
        await self._reload()
        self._task = asyncio.create_task(every(POLL, self._look, "reading the keys"))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def find(self, presented: bytes) -> VirtualKey | None:
        """The live key whose secret was presented, if there is one. Only the secret's
        hash is looked up, so the time a lookup takes tells nothing of the secrets held."""
        if not presented.startswith(_PREFIX):
            return None
        return self._by_hash.get(digest(presented))

    def live(self, key_id: str) -> VirtualKey | None:
        """The key with this id, unless it was revoked."""
        return next((key for key in self._by_hash.values() if key.id == key_id), None)

    # -- what the admin API asks ---------------------------------------------------------------

    async def create(self, fields: KeyFields) -> tuple[VirtualKey, str]:
        """A new key and its secret, which is not kept and cannot be shown again."""
        secret = new_secret()
        key = VirtualKey(id="key_" + secrets.token_hex(8), hint=hint(secret), **dict(fields))
        hashed = digest(secret.encode())
        now = time.time()
        await self.database.changed(INSERT, key.id, hashed, key.created_at, now, _body(key))
        self._changes += 1
        self._by_hash[hashed] = key
        self.bus.publish("key", f"changed {key.id}")
        return key, secret

    async def all(self) -> list[VirtualKey]:
        return [_key(values) for values in await self.database.rows(ALL)]

    async def get(self, key_id: str) -> VirtualKey:
        rows = await self.database.rows(BY_ID, key_id)
        if not rows:
            raise KeyNotFound(key_id)
        return _key(rows[0])

    async def update(self, key_id: str, update: KeyUpdate) -> VirtualKey:
        key = await self.get(key_id)
        if key.revoked_at is not None:
            raise KeyNotFound(key_id)
        changed = key.model_copy(update=update.model_dump(exclude_unset=True))
        changed = VirtualKey.model_validate(changed.model_dump())  # the limits checked again
        if not await self.database.changed(UPDATE, _body(changed), time.time(), key_id):
            raise KeyNotFound(key_id)
        await self._reload_one(key_id)
        self.bus.publish("key", f"changed {key_id}")
        return changed

    async def revoke(self, key_id: str) -> VirtualKey:
        """Revoke a key, at once here and, over the bus, everywhere else."""
        now = time.time()
        if not await self.database.changed(REVOKE, now, now, key_id):
            await self.get(key_id)  # unknown: a 404; already revoked: as good as done
        self._drop(key_id)
        self.bus.publish("key", f"revoked {key_id}")
        return await self.get(key_id)

    # -- keeping current -----------------------------------------------------------------------

    def _heard(self, kind: Kind, about: str) -> None:
        if kind != "key":
            return
        change, _, key_id = about.partition(" ")
        if change == "revoked":
            self._drop(key_id)  # at once: no request passes while the record is read
        else:
            task = asyncio.get_running_loop().create_task(self._reload_one(key_id))
            task.add_done_callback(_log_failure)

    def _drop(self, key_id: str) -> None:
        self._changes += 1
        for hashed, key in list(self._by_hash.items()):
            if key.id == key_id:
                del self._by_hash[hashed]

    async def _reload_one(self, key_id: str) -> None:
        """Read a key again; it is swapped in only once read, so it works throughout."""
        rows = await self.database.rows(BY_ID, key_id)
        self._drop(key_id)
        for values in rows:
            key = _key(values)
            if key.revoked_at is None:
                self._by_hash[values[1]] = key

    async def _reload(self) -> None:
        """Read every live key; a read that a change here overtook is read again, lest it
        bring back a key just revoked or leave out one just made."""
        while True:
            changes = self._changes
            rows = await self.database.rows(LIVE)
            if changes == self._changes:
                self._by_hash = {values[1]: _key(values) for values in rows}
                return

    async def _look(self) -> None:
        """Read every key again when the table changed since the last look."""
        newest = (await self.database.rows(NEWEST))[0][0]
        if newest != self._newest:
            self._newest = newest
            await self._reload()


_PREFIX = PREFIX.encode()


def _body(key: VirtualKey) -> bytes:
    return orjson.dumps(key.model_dump(exclude={"id", "created_at", "revoked_at"}))


def _key(values: Any) -> VirtualKey:
    key_id, _, created_at, revoked_at, body = values
    return VirtualKey(id=key_id, created_at=created_at, revoked_at=revoked_at, **orjson.loads(body))


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not read a changed key", exc_info=task.exception())
