"""What every adapter for a remote upstream shares: its config fields, its credentials,
its connect timeout, and posting to it with failures mapped onto the error tree."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import ClassVar

import aiohttp
from pydantic import Field, SecretStr

from ..errors import UpstreamError, upstream_error
from ..trace import Trace, UpstreamCall, current_trace
from ..upstream import upstream_errors
from .base import ModelSpec, Provider


class RemoteSpec(ModelSpec):
    """Fields every remote model has. Subclasses set ``base_url``'s default to the public API."""

    # The variable a key is read from when the entry gives neither api_key nor api_key_env,
    # and whether the model cannot work without one.
    default_key_env: ClassVar[str | None] = None
    key_required: ClassVar[bool] = False

    base_url: str
    api_key: SecretStr | None = None
    api_key_env: str | None = Field(default=None, description="Read the key from this variable.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra upstream headers.")
    drop_unsupported_params: bool = Field(
        default=False,
        description="Drop request fields the upstream cannot honour instead of refusing them.",
    )


class HTTPProvider(Provider):
    """A provider that talks to its upstream over the app's shared aiohttp session."""

    spec: RemoteSpec

    def __init__(self, spec: RemoteSpec, http: aiohttp.ClientSession) -> None:
        super().__init__(spec, http)
        self.root = spec.base_url.rstrip("/")
        self.secrets = [spec.api_key.get_secret_value()] if spec.api_key else []
        self.headers = {"content-type": "application/json", **self.auth_headers(), **spec.headers}
        # Only connecting is timed here: the model times the rest, whatever the provider.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=spec.timeouts.connect)

    def _timeout_now(self) -> aiohttp.ClientTimeout:
        """The connect timeout, lowered when the client of this request asked for less."""
        connect = self.spec.timeouts.lowered(current_trace().asked_timeouts).connect
        if connect == self._timeout.connect:
            return self._timeout
        return aiohttp.ClientTimeout(total=None, connect=connect)

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.secrets[0]}"} if self.secrets else {}

    def error(self, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        """The client-facing error for an upstream's error reply; adapters refine it."""
        return upstream_error(status, body, headers, self.secrets)

    async def post(self, url: str, payload: bytes) -> bytes:
        """POST ``payload`` and return the whole reply body, or raise the mapped error."""
        trace = current_trace()
        call = trace.sent(url, self.headers, payload, self.secrets)
        with upstream_errors(self.name):
            async with self.http.post(
                url, data=payload, headers=self.headers, timeout=self._timeout_now()
            ) as response:
                body = await response.read()
        trace.received(call, response.status, body)
        if response.status >= 400:
            raise self.error(response.status, body, response.headers)
        return body

    @asynccontextmanager
    async def open_stream(self, url: str, payload: bytes) -> AsyncIterator[StreamBody]:
        """POST ``payload`` for a streamed reply; an error status raises the mapped error."""
        trace = current_trace()
        call = trace.sent(url, self.headers, payload, self.secrets)
        with upstream_errors(self.name):
            response = await self.http.post(
                url, data=payload, headers=self.headers, timeout=self._timeout_now()
            )
        try:
            if response.status >= 400:
                with upstream_errors(self.name):
                    body = await response.read()
                trace.received(call, response.status, body)
                raise self.error(response.status, body, response.headers)
            trace.received(call, response.status, b"")
            yield StreamBody(response.content, trace, call)
        finally:
            response.release()


class StreamBody:
    """A streamed reply's bytes as they arrive, the first of them kept for the inspector."""

    __slots__ = ("_call", "_content", "_trace")

    def __init__(self, content: aiohttp.StreamReader, trace: Trace, call: UpstreamCall | None):
        self._content = content
        self._trace = trace
        self._call = call

    async def read(self) -> bytes:
        """What has arrived since the last read, waiting for something; b"" at the end."""
        data = await self._content.readany()
        if self._call is not None:
            self._trace.streamed(self._call, data)
        return data
