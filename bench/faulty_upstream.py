"""A minimal, fast OpenAI-compatible upstream that fails on purpose, for soaking the gateway's
retries, timeouts and cooldowns. Raw ASGI, like the other fakes, so that it costs little.

POST /v1/chat/completions -> with probability p5xx a 500 or 503, with probability p429 a 429
                             (retry-after-ms: 50), otherwise a fixed completion, or with
                             "stream": true an SSE stream of CHUNKS chunks and [DONE]; with
                             probability pstall a stream stops for --stall seconds halfway
GET  /v1/models           -> one model (a readiness probe)
usage: python bench/faulty_upstream.py PORT [--p5xx 0.3] [--p429 0.1] [--pstall 0.02]
                                            [--stall 30] [--chunks 20] [--seed N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Message, Receive, Send], Awaitable[None]]

JSON = [(b"content-type", b"application/json")]
SSE = [(b"content-type", b"text/event-stream")]
MODEL = {"id": "fake-model", "object": "model", "created": 1700000000, "owned_by": "fake"}
MODELS = json.dumps({"object": "list", "data": [MODEL]}).encode()
ANSWER = {"role": "assistant", "content": "Hello from the fake upstream."}
COMPLETION = json.dumps({
    "id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000,
    "model": "fake-model",
    "choices": [{"index": 0, "message": ANSWER, "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
}).encode()  # fmt: skip
DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class Faults:
    p5xx: float
    p429: float
    pstall: float
    stall: float


def error(message: str, kind: str) -> bytes:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return json.dumps(body).encode()


def chunk(index: int, last: bool) -> bytes:
    delta = {"role": "assistant", "content": "tok0 "} if index == 0 else {"content": f"tok{index} "}
    choice = {"index": 0, "delta": delta, "finish_reason": "stop" if last else None}
    data = {
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000,
        "model": "fake-model", "choices": [choice],
    }  # fmt: skip
    return f"data: {json.dumps(data)}\n\n".encode()


async def read_body(receive: Receive) -> bytes:
    body: bytes = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def reply(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def hung_up(receive: Receive, seconds: float) -> bool:
    """Stall for ``seconds``; True if the client hung up first. Ending early changes nothing the
    client can see, but keeps abandoned stalls from piling up in this process."""
    try:
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True


async def stream(send: Send, receive: Receive, parts: list[bytes], stall: float | None) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": SSE})
    half = len(parts) // 2
    for index, part in enumerate(parts):
        if index == half and stall is not None and await hung_up(receive, stall):
            return
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": DONE})


def make_app(faults: Faults, chunks: int, seed: int | None) -> App:
    rng = random.Random(seed)
    parts = [chunk(i, i == chunks - 1) for i in range(chunks)]

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if scope["path"] == "/v1/models":
            await reply(send, 200, MODELS, JSON)
            return
        if scope["path"] != "/v1/chat/completions":
            await reply(send, 404, error("not found", "invalid_request_error"), JSON)
            return
        draw = rng.random()
        if draw < faults.p5xx:
            status = rng.choice((500, 503))
            await reply(send, status, error(f"injected {status}", "server_error"), JSON)
        elif draw < faults.p5xx + faults.p429:
            headers = [*JSON, (b"retry-after-ms", b"50")]
            await reply(send, 429, error("injected rate limit", "rate_limit_error"), headers)
        elif b'"stream":true' in body or b'"stream": true' in body:
            stall = faults.stall if rng.random() < faults.pstall else None
            await stream(send, receive, parts, stall)
        else:
            await reply(send, 200, COMPLETION, JSON)

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="A fault-injecting OpenAI-compatible upstream.")
    parser.add_argument("port", type=int)
    parser.add_argument("--p5xx", type=float, default=0.3, help="chance of a 500 or 503")
    parser.add_argument("--p429", type=float, default=0.1, help="chance of a 429")
    parser.add_argument("--pstall", type=float, default=0.02, help="chance a stream stalls")
    parser.add_argument("--stall", type=float, default=30, help="seconds a stalled stream waits")
    parser.add_argument("--chunks", type=int, default=20, help="chunks in a streamed reply")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    faults = Faults(args.p5xx, args.p429, args.pstall, args.stall)
    uvicorn.run(
        make_app(faults, args.chunks, args.seed), host="127.0.0.1", port=args.port,
        log_level="warning", access_log=False, loop="uvloop", http="httptools",
    )  # fmt: skip


if __name__ == "__main__":
    main()
