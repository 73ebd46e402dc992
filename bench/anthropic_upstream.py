"""A minimal, fast Anthropic Messages upstream, the counterpart of the shared ruler's
``fake_upstream.py``: raw ASGI, so that the upstream itself costs as little as possible.

POST /v1/messages -> a fixed message, or with "stream": true the Messages event sequence
                     around N text deltas
usage: python bench/anthropic_upstream.py PORT [CHUNKS]
"""

from __future__ import annotations

import json
import sys
from typing import Any

CHUNKS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
USAGE = {"input_tokens": 9, "output_tokens": 7}
MESSAGE = {
    "id": "msg_fake", "type": "message", "role": "assistant", "model": "fake-model",
    "content": [{"type": "text", "text": "Hello from the fake upstream."}],
    "stop_reason": "end_turn", "stop_sequence": None, "usage": USAGE,
}  # fmt: skip


def event(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


OPENING = {**MESSAGE, "content": [], "stop_reason": None, "usage": {**USAGE, "output_tokens": 1}}
TEXT_BLOCK = {"type": "text", "text": ""}
END = {"stop_reason": "end_turn", "stop_sequence": None}
STREAM = [
    event({"type": "message_start", "message": OPENING}),
    event({"type": "content_block_start", "index": 0, "content_block": TEXT_BLOCK}),
    event({"type": "ping"}),
    *(
        event(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": f"tok{i} "},
            }
        )
        for i in range(CHUNKS)
    ),
    event({"type": "content_block_stop", "index": 0}),
    event({"type": "message_delta", "delta": END, "usage": {"output_tokens": CHUNKS}}),
    event({"type": "message_stop"}),
]
WHOLE = json.dumps(MESSAGE).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    streamed = b'"stream":true' in body or b'"stream": true' in body
    kind = b"text/event-stream" if streamed else b"application/json"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
    if not streamed:
        await send({"type": "http.response.body", "body": WHOLE})
        return
    for part in STREAM:
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
        loop="uvloop", http="httptools",
    )  # fmt: skip
