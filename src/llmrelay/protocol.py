"""The HTTP protocol the gateway is served with: uvicorn's httptools protocol, with the
writes that one turn of the event loop makes on a connection sent as one.

uvicorn writes a response's head, each part of its body and its end as they
come, one system call each, and on the other side each one wakes the client. A
relayed stream's head, body and closing ``[DONE]`` mostly come in one turn of
the loop, and so go out in one write rather than three; a whole reply's head
and body in one rather than two. Measured under load with the shared ruler,
that was about a tenth of the gateway's time per streamed request. A write
waits at most for the loop's turn to end, and a response's last part not at
all: it goes out with what is held as soon as uvicorn has it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GatheredTransport(asyncio.Transport):
    """A transport that holds the writes of a turn of the loop and sends them together at
    its end, in order; closing sends what is held first."""

    def __init__(self, real: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.real = real
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def flush(self) -> None:
        held = self._held
        if not held:
            return
        self._held = []
        if not self.real.is_closing():  # a client that left gets nothing more
            self.real.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self.real.close()

    def abort(self) -> None:
        self._held = []
        self.real.abort()

    def is_closing(self) -> bool:
        return self.real.is_closing()

    def get_write_buffer_size(self) -> int:
        return self.real.get_write_buffer_size() + sum(map(len, self._held))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.real.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self.real.pause_reading()

    def resume_reading(self) -> None:
        self.real.resume_reading()

    def is_reading(self) -> bool:
        return self.real.is_reading()


class HTTPProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a ``GatheredTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(GatheredTransport(transport, self.loop))

    def on_response_complete(self) -> None:
        # A whole response goes out at once, ahead of the logging and accounting that its
        # request does after it, which would otherwise delay its last bytes.
        if isinstance(self.transport, GatheredTransport):
            self.transport.flush()
        super().on_response_complete()

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol takes over the connection, and writes to it itself.
        if isinstance(self.transport, GatheredTransport):
            self.transport.flush()
            self.transport = self.transport.real
        super().handle_websocket_upgrade()
