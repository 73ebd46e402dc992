"""Image URLs to inline data: fetched from a real server on loopback, with the size limit,
the type check and the guard against private addresses."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import pytest
from aiohttp import web

from llmrelay.errors import InvalidRequest
from llmrelay.images import ImageFetcher, decode_data_url

from .fakes.server import FakeServer

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


class ImageServer(FakeServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/cat.png", lambda _: web.Response(body=PNG, content_type="image/png"))
        app.router.add_get(
            "/big.png", lambda _: web.Response(body=PNG * 100, content_type="image/png")
        )
        app.router.add_get("/page", lambda _: web.Response(text="<html>", content_type="text/html"))
        app.router.add_get("/gone.png", lambda _: web.Response(status=404))


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    with ImageServer() as server:
        yield server


def load(url: str, *, allow_private: bool = True, max_bytes: int = 1000) -> object:
    async def run() -> object:
        fetcher = ImageFetcher(max_bytes=max_bytes, timeout=5, allow_private=allow_private)
        try:
            return await fetcher.load(url)
        finally:
            await fetcher.close()

    return asyncio.run(run())


def test_an_image_url_is_fetched_inline(images: ImageServer) -> None:
    image = load(f"{images.root}/cat.png")
    assert image.media_type == "image/png"  # type: ignore[attr-defined]
    assert base64.b64decode(image.data) == PNG  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/big.png", "larger than 1000 bytes"),
        ("/page", "is not one of"),
        ("/gone.png", "answered HTTP 404"),
    ],
)
def test_bad_image_urls_are_400s(images: ImageServer, path: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why):
        load(f"{images.root}{path}")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "10.0.0.1", "169.254.169.254"])
def test_private_addresses_are_refused(images: ImageServer, host: str) -> None:
    with pytest.raises(InvalidRequest, match="private or loopback"):
        load(f"http://{host}:{images.port}/cat.png", allow_private=False)


def test_only_http_and_data_urls(images: ImageServer) -> None:
    with pytest.raises(InvalidRequest, match="https URL or a data: URL"):
        load("file:///etc/passwd")
    with pytest.raises(InvalidRequest, match="could not be fetched"):
        load("http://127.0.0.1:1/cat.png")


def test_data_urls() -> None:
    data = base64.b64encode(PNG).decode()
    assert decode_data_url(f"data:image/png;base64,{data}").data == data
    with pytest.raises(InvalidRequest, match="base64 data is not valid"):
        decode_data_url("data:image/png;base64,@@@")
    with pytest.raises(InvalidRequest, match="must be base64"):
        decode_data_url("data:text/plain;base64,aGk=")
