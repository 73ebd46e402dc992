"""Server-sent events in one place: decoding upstream streams, encoding ours, and
the response that sends them while watching for the client to hang up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable
from typing import Protocol, TypeVar

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .errors import INTERNAL_MESSAGE, RelayError, UpstreamMalformed
from .schemas import JSONObject

ChunkStream = AsyncGenerator[list[JSONObject], None]
"""A stream of OpenAI-shaped chunks, in batches: whatever arrived together from the
upstream is yielded together, so that it leaves the gateway in one write."""

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Stops nginx and similar proxies from buffering the stream.
    (b"x-accel-buffering", b"no"),
]

T = TypeVar("T")


class EventDecoder(Protocol):
    """Turns a stream's bytes, as they arrive, into the data of each whole event.

    Event names are not kept: every format the gateway reads repeats an event's
    type in its data.
    """

    def feed(self, chunk: bytes) -> list[bytes]: ...

    def close(self) -> list[bytes]:
        """The events still held when the stream ends."""
        ...


class SSEDecoder:
    """Incremental SSE parser: feed it bytes as they arrive, get back whole events' data."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = lf_only(buffer)
        *blocks, self._buffer = buffer.split(b"\n\n")
        events = []
        for block in blocks:
            # The two common shapes are made cheap: a data line (OpenAI, Gemini, Cohere), and a
            # named event with one data line (Anthropic).
            if block[:6] == b"data: " and b"\n" not in block:
                events.append(block[6:])
                continue
            if block[:7] == b"event: ":
                start = block.find(b"\ndata: ") + 7
                if start > 6 and block.find(b"\n", start) < 0:
                    events.append(block[start:])
                    continue
            data = [
                line[6:] if line[5:6] == b" " else line[5:]
                for line in block.split(b"\n")
                if line.startswith(b"data:")
            ]
            if data:  # an event with no data, such as a comment, is no event
                events.append(b"\n".join(data))
        return events

    def close(self) -> list[bytes]:
        """The events left at the end of the stream: none, since SSE drops an unended event."""
        return []


class NDJSONDecoder:
    """Incremental newline-delimited JSON parser, with ``SSEDecoder``'s interface: each line
    is one event's data."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        return [line for line in lines if line.strip()]

    def close(self) -> list[bytes]:
        """The last line, when the stream ended without a newline after it."""
        rest, self._buffer = self._buffer, b""
        return [rest] if rest.strip() else []


def lf_only(buffer: bytes) -> bytes:
    """SSE allows CRLF and CR line ends; make them LF, keeping a trailing CR for the next
    read, whose first byte may be the LF that completes it."""
    if b"\r" not in buffer:
        return buffer
    tail = b"\r" if buffer.endswith(b"\r") else b""
    body = buffer[: len(buffer) - len(tail)]
    return body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail


def encode(obj: JSONObject) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class Relayed(list[JSONObject]):
    """Chunks decoded from an upstream that speaks OpenAI's SSE, with the bytes they came in.

    Those bytes are relayed as they are, which spares re-encoding every chunk on
    the pass-through path. Treat it as read-only: to change chunks, build a new list.
    """

    __slots__ = ("wire",)

    def __init__(self, chunks: list[JSONObject], wire: bytes) -> None:
        super().__init__(chunks)
        self.wire = wire


def sse_bytes(batch: list[JSONObject]) -> bytes:
    if isinstance(batch, Relayed):
        return batch.wire
    if not batch:
        return b""
    return b"data: " + b"\n\ndata: ".join(map(orjson.dumps, batch)) + b"\n\n"


def plain_chunks(block: bytes) -> tuple[list[JSONObject], bytes, bool] | None:
    """The chunks of whole SSE events in the common shape, one ``data: <json object>`` line
    each, split and parsed in C-speed byte operations and one ``orjson.loads``:
    ``(chunks, the events minus a closing [DONE], whether it closed with one)``.

    None when the block holds anything else (other fields, blank lines, CRs, a [DONE]
    before the end, an ``"error"``), which the general ``SSEDecoder`` then handles. A
    JSON text holds no raw newline, so once every event boundary is a comma, any
    newline left is a shape the fast path does not take.
    """
    done = block.endswith(DONE)
    wire = block[: -len(DONE)] if done else block
    if not wire:
        return [], b"", done
    if not wire.startswith(b"data: ") or b"\r" in wire:
        return None
    array = wire[6:-2].replace(b"\n\ndata: ", b",")
    if b"\n" in array:
        return None
    try:
        chunks = orjson.loads(b"[" + array + b"]")
    except orjson.JSONDecodeError:
        return None  # a [DONE] mid-block, or a bad chunk: the events one by one find it
    # Each boundary made 8 bytes 1; one value per event, not ``data: {},{}``.
    if len(chunks) != (len(wire) - 8 - len(array)) // 7 + 1:
        return None
    for chunk in chunks:
        if type(chunk) is not dict or "error" in chunk:
            return None
    return chunks, wire, done


def error_event(exc: BaseException) -> bytes:
    """The event that closes a stream that failed after it started, as OpenAI and vLLM send it."""
    if isinstance(exc, RelayError):
        return encode(exc.to_dict())
    log.error("stream failed after it started", exc_info=exc)
    return encode(RelayError(INTERNAL_MESSAGE).to_dict())


class Framing:
    """How a chunk stream goes out as server-sent events: by default OpenAI's, one
    ``data:`` event per chunk, an error event if the stream breaks, and ``closing``
    (``[DONE]``) at the end. Each surface's framing is a subclass; one with state
    serves one response."""

    def __init__(self, closing: bytes = DONE) -> None:
        self.closing = closing

    def first(self, batch: list[JSONObject]) -> bytes:
        """What opens the stream, with its first batch."""
        return self.batch(batch)

    def batch(self, batch: list[JSONObject]) -> bytes:
        return sse_bytes(batch)

    def failed(self, exc: Exception) -> bytes:
        """What ends a stream that broke after it started."""
        return error_event(exc) + self.closing

    def end(self) -> bytes:
        return self.closing


OPENAI = Framing()


class EventStreamResponse(Response):
    """A ``text/event-stream`` reply that stops its chunk stream when the client leaves.

    The first batch is awaited before anything is sent, so a failure before it
    propagates as an ordinary error reply. From then on the stream is cancelled
    as soon as the server reports a disconnect, even while it waits on an
    upstream that sends nothing, so upstream connections and local generations
    end with the client. Each batch is framed as it comes, in the response's own
    task rather than through another generator; the end goes out with the body's
    last part.
    """

    def __init__(self, stream: ChunkStream, framing: Framing = OPENAI) -> None:
        # No body, and so no content-length: the headers are the same for every stream.
        self.status_code = 200
        self.background = None
        self.raw_headers = list(SSE_HEADERS)
        self.stream = stream
        self.framing = framing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream, framing = self.stream, self.framing

        async def pump() -> None:
            first = await anext(stream, None)
            if first is None:
                raise UpstreamMalformed("The upstream sent an empty stream.")
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send(
                {"type": "http.response.body", "body": framing.first(first), "more_body": True}
            )
            while True:
                try:
                    batch = await anext(stream, None)
                    part = framing.end() if batch is None else framing.batch(batch)
                except Exception as exc:
                    batch, part = None, framing.failed(exc)
                if batch is None:
                    await send({"type": "http.response.body", "body": part})
                    return
                if part:
                    await send({"type": "http.response.body", "body": part, "more_body": True})

        try:
            await run_until_disconnect(pump(), receive)
        except OSError:
            # The transport went away between the disconnect and our next write.
            log.info("client disconnected; stream stopped")
        finally:
            # Closing the source ends the upstream request, however the stream ended.
            await stream.aclose()


WATCH_AFTER = 0.05


class ClientGone(Exception):
    """The client disconnected before its reply was ready; the work for it was cancelled."""


async def run_until_disconnect(work: Awaitable[T], receive: Receive) -> T:
    """Await ``work``, cancelling it and raising ``ClientGone`` if the client disconnects first.

    The work runs in the caller's task. Only work still running after
    ``WATCH_AFTER`` seconds gets a task that waits for the disconnect, so the
    many quick replies cost a timer rather than a task, and a client that leaves
    is noticed within that delay at worst.
    """
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    assert current is not None
    disconnected = False
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        nonlocal disconnected
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected = True
        current.cancel()

    def start_watching() -> None:
        nonlocal watcher
        watcher = loop.create_task(watch())

    timer = loop.call_later(WATCH_AFTER, start_watching)
    try:
        return await work
    except asyncio.CancelledError:
        if not disconnected:
            raise
        current.uncancel()
        raise ClientGone() from None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
