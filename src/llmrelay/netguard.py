"""The guard on addresses that clients make the gateway reach (image URLs, webhooks): a
server-side request to loopback, a private network or a cloud's metadata address
would let a client probe what only the gateway can see.

The guard sits in the session's resolver, so every address a host name resolves to
is checked at connect time (a name cannot pass the check and then resolve
elsewhere). Loopback, private, link-local and other non-global addresses are
refused unless the config allows them.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class BlockedAddress(aiohttp.ClientConnectionError):
    pass


def _public(address: str) -> bool:
    return ipaddress.ip_address(address.split("%")[0]).is_global


def private_ip(host: str) -> bool:
    """Whether ``host`` is an IP address, written out, that is not a public one."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return not _public(host)


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, but drops every non-public address."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = [r for r in await self._inner.resolve(host, port, family) if _public(r["host"])]
        if not results:
            raise BlockedAddress(f"{host} resolves only to non-public addresses")
        return results

    async def close(self) -> None:
        await self._inner.close()


def session(*, allow_private: bool, limit: int, timeout: float) -> aiohttp.ClientSession:
    """A session that reaches only public addresses, unless ``allow_private``."""
    resolver: Any = None if allow_private else GuardedResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, limit=limit)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout))
