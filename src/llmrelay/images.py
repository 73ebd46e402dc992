"""Images in requests, as the inline data that every provider takes: ``data:`` URLs are
decoded, and http(s) URLs are fetched with a size limit, a timeout and the guard of
``netguard``, which the model's config can relax.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from . import netguard
from .errors import InvalidRequest

MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


@dataclass(frozen=True)
class Image:
    media_type: str
    data: str  # base64

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.data}"


class ImageFetcher:
    def __init__(self, *, max_bytes: int, timeout: float, allow_private: bool) -> None:
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = netguard.session(
                allow_private=self.allow_private, limit=16, timeout=self.timeout
            )
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
        if not self.allow_private and netguard.private_ip(parts.hostname):
            raise _bad(url, "it points at a private or loopback address")
        try:
            async with self._open().get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise _bad(url, f"fetching it answered HTTP {response.status}")
                media_type = response.content_type
                body = await response.content.read(self.max_bytes + 1)
        except netguard.BlockedAddress:
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


def _bad(url: str, why: str) -> InvalidRequest:
    shown = url if len(url) <= 80 else url[:77] + "..."
    return InvalidRequest(
        f"Invalid image URL {shown!r}: {why}.", param="messages", code="invalid_image_url"
    )
