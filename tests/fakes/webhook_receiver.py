"""A receiver of webhooks, as a real server on loopback: ``POST /hooks/<name>`` is recorded
with its exact bytes, and answered with the statuses ``answer(name, [...])`` sets, one per
delivery, then 200."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass

from aiohttp import web

from .server import FakeServer


@dataclass
class Delivery:
    name: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it came


class WebhookReceiver(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.deliveries: list[Delivery] = []
        self._answers: dict[str, deque[int]] = defaultdict(deque)

    def url(self, name: str) -> str:
        return f"{self.root}/hooks/{name}"

    def answer(self, name: str, statuses: list[int]) -> None:
        self._answers[name] = deque(statuses)

    def to(self, name: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.name == name]

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/hooks/{name}", self.hook)

    async def hook(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.deliveries.append(
            Delivery(name, dict(request.headers), await request.read(), time.monotonic())
        )
        answers = self._answers[name]
        return web.Response(status=answers.popleft() if answers else 200)
