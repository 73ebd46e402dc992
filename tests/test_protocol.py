"""The gateway's HTTP protocol gathers the writes of one turn of the event loop into one:
checked on a real socket pair, and through a real server answering a real client."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable

import httpx
import uvicorn
from starlette.types import Receive, Scope, Send

from llmrelay.protocol import GatheredTransport, HTTPProtocol

from .services import free_port

Scenario = Callable[[GatheredTransport, socket.socket], Awaitable[None]]


def _over_a_socket_pair(scenario: Scenario) -> None:
    async def run() -> None:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        try:
            await scenario(GatheredTransport(transport, loop), theirs)
        finally:
            transport.close()
            theirs.close()

    asyncio.run(run())


def _received(peer: socket.socket) -> bytes:
    try:
        return peer.recv(65536)
    except BlockingIOError:
        return b""


def test_the_writes_of_one_turn_go_out_together_when_it_ends() -> None:
    async def scenario(gathered: GatheredTransport, peer: socket.socket) -> None:
        for part in (b"head ", b"body ", b"end"):
            gathered.write(part)
        assert _received(peer) == b""  # held while this turn runs
        assert gathered.get_write_buffer_size() == 13
        await asyncio.sleep(0)
        assert _received(peer) == b"head body end"  # in one read: it was one write
        gathered.write(b"next turn")
        await asyncio.sleep(0)
        assert _received(peer) == b"next turn"

    _over_a_socket_pair(scenario)


def test_closing_sends_what_is_held_first() -> None:
    async def scenario(gathered: GatheredTransport, peer: socket.socket) -> None:
        gathered.write(b"last words")
        gathered.close()
        await asyncio.sleep(0.01)
        assert _received(peer) == b"last words"
        assert gathered.is_closing()

    _over_a_socket_pair(scenario)


def test_what_is_held_for_a_connection_that_was_aborted_is_dropped() -> None:
    async def scenario(gathered: GatheredTransport, peer: socket.socket) -> None:
        gathered.write(b"never sent")
        gathered.abort()
        await asyncio.sleep(0.01)
        assert _received(peer) == b""  # the connection is closed with nothing sent

    _over_a_socket_pair(scenario)


async def _three_parts(scope: Scope, receive: Receive, send: Send) -> None:
    """A stream whose parts come in separate turns of the loop, the last with the end."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one,", b"two,"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
        await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": b"three"})


def test_a_server_on_the_protocol_answers_keep_alive_requests_whole_and_in_order() -> None:
    port = free_port()
    config = uvicorn.Config(
        _three_parts, host="127.0.0.1", port=port, http=HTTPProtocol, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            replies = [client.get("/") for _ in range(3)]  # on one kept-alive connection
        assert [(r.status_code, r.text) for r in replies] == [(200, "one,two,three")] * 3
    finally:
        server.should_exit = True
        thread.join(10)
