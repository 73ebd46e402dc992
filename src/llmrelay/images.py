"""Images in requests, as the inline data that every provider takes: ``data:`` URLs are
decoded, and http(s) URLs are fetched with a size limit, a timeout and an SSRF guard.

The guard sits in the fetching session's resolver, so every address a host name
resolves to is checked at connect time (a name cannot pass the check and then
resolve elsewhere). Loopback, private, link-local and other non-global addresses
are refused unless the model's config allows them.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from .errors import InvalidRequest

MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


@dataclass(frozen=True)
class Image:
    media_type: str
    data: str  # base64

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.data}"


class BlockedAddress(aiohttp.ClientConnectionError):
    pass


def _public(address: str) -> bool:
    return ipaddress.ip_address(address.split("%")[0]).is_global


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


class ImageFetcher:
    def __init__(self, *, max_bytes: int, timeout: float, allow_private: bool) -> None:
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver: Any = None if self.allow_private else GuardedResolver()
            connector = aiohttp.TCPConnector(resolver=resolver, limit=16)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def load(self, url: str) -> Image:
        if url.startswith("data:"):
            return decode_data_url(url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _bad(url, "it must be an https URL or a data: URL")
        if not self.allow_private and _is_ip(parts.hostname) and not _public(parts.hostname):
            raise _bad(url, "it points at a private or loopback address")
        try:
            async with self._open().get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise _bad(url, f"fetching it answered HTTP {response.status}")
                media_type = response.content_type
                body = await response.content.read(self.max_bytes + 1)
        except BlockedAddress:
            raise _bad(url, "it points at a private or loopback address") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _bad(url, f"it could not be fetched ({type(exc).__name__})") from None
        if len(body) > self.max_bytes:
            raise _bad(url, f"it is larger than {self.max_bytes} bytes")
        if media_type not in MEDIA_TYPES:
            raise _bad(url, f"its type {media_type!r} is not one of {', '.join(MEDIA_TYPES)}")
        return Image(media_type, base64.b64encode(body).decode())


def decode_data_url(url: str) -> Image:
    head, _, data = url.partition(",")
    media_type = head.removeprefix("data:").split(";")[0]
    if ";base64" not in head or media_type not in MEDIA_TYPES:
        raise _bad(url, f"a data: URL must be base64 with a type among {', '.join(MEDIA_TYPES)}")
    try:
        base64.b64decode(data, validate=True)
    except binascii.Error:
        raise _bad(url, "its base64 data is not valid") from None
    return Image(media_type, data)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _bad(url: str, why: str) -> InvalidRequest:
    shown = url if len(url) <= 80 else url[:77] + "..."
    return InvalidRequest(
        f"Invalid image URL {shown!r}: {why}.", param="messages", code="invalid_image_url"
    )
