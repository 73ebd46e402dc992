"""An OpenAI-compatible upstream whose answers are scripted per model, for the jobs tests: a
real server on loopback.

Route: ``POST /v1/chat/completions``, whole or streamed. ``script(model, [answers], finish)``
sets the texts the next requests for ``model`` get, one each, then ``DEFAULT``, each ending
with the finish reason ``finish``; a model named ``echo`` answers ``{"said": <the last
message>}`` instead, so that each answer shows which request it was for. A streamed
answer comes one word per chunk, ``pace`` seconds apart, with a usage chunk when asked.
Every request is recorded, and each stream records whether the gateway hung up on it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import defaultdict, deque
from typing import Any

from aiohttp import web

from .server import FakeServer, sse_start

DEFAULT = '{"ok": true}'


class ScriptedUpstream(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.pace = 0.0
        self.hung_up: list[str] = []  # models of the streams the gateway closed early
        self.ended: list[float] = []  # time.monotonic() as each stream's last byte went
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._finish: dict[str, str] = {}

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def model(self, name: str) -> dict[str, Any]:
        """A config entry for the model ``name``, served here under the same name."""
        return {"name": name, "provider": "openai", "base_url": self.base_url, "model": name}

    def script(self, model: str, answers: list[str], finish: str = "stop") -> None:
        self._scripts[model] = deque(answers)
        self._finish[model] = finish

    def asked(self, model: str) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.body.get("model") == model]

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model = body["model"]
        script = self._scripts[model]
        if model == "echo":
            text = json.dumps({"said": body["messages"][-1]["content"]})
        else:
            text = script.popleft() if script else DEFAULT
        finish = self._finish.get(model, "stop")
        if not body.get("stream"):
            return web.json_response(_completion(model, text, finish))
        response = await sse_start(request)
        pieces = re.findall(r"\S+\s*", text) or [text]
        try:
            await response.write(_chunk(model, {"role": "assistant", "content": ""}))
            for piece in pieces:
                await asyncio.sleep(self.pace)
                await response.write(_chunk(model, {"content": piece}))
            await response.write(_chunk(model, {}, finish))
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = _usage(len(pieces))
                await response.write(_data({**_head(model), "choices": [], "usage": usage}))
            await response.write(b"data: [DONE]\n\n")
            self.ended.append(time.monotonic())
        except ConnectionError:
            self.hung_up.append(model)
        return response


def _head(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
    }


def _usage(completion: int) -> dict[str, int]:
    return {"prompt_tokens": 5, "completion_tokens": completion, "total_tokens": 5 + completion}


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return _data({**_head(model), "choices": [choice]})


def _completion(model: str, text: str, finish: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": text, "refusal": None}
    return {
        "id": "chatcmpl-scripted", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": _usage(len(text.split())),
    }  # fmt: skip
