"""One job as it is stored, and the job object clients see, with its progress estimate."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ..schemas import JSONObject

Status = Literal["queued", "in_progress", "completed", "failed", "cancelled"]
Stage = Literal["queued", "waiting_for_model", "generating", "validating", "done"]
WebhookState = Literal["waiting", "delivered", "failed"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

# Progress holds here until the job is done: the estimate may be short.
CEILING = 95
# When no job of a model has finished yet, this long is expected per job.
FIRST_GUESS_SECONDS = 20.0

MESSAGES: dict[str, str] = {
    "queued": "Waiting for a worker.",
    "waiting_for_model": "Waiting for the model to start answering.",
    "generating": "The model is writing the answer.",
    "validating": "Checking the answer against the schema.",
    "done": "Done.",
}
ENDINGS = {"failed": "Failed.", "cancelled": "Cancelled."}


_ID = re.compile(r"job_[0-9a-f]{24}")


def new_id() -> str:
    return f"job_{secrets.token_hex(12)}"


def is_id(text: str) -> bool:
    """Whether ``text`` has the shape of a job id (so that anything else is not looked up)."""
    return _ID.fullmatch(text) is not None


@dataclass
class Job:
    id: str
    model: str
    request: JSONObject  # the chat-completion body, as validated
    status: Status = "queued"
    stage: Stage = "queued"
    progress: int = 0  # what the worker last measured; the estimate may be higher
    attempts: int = 0  # answers asked of the model, repairs and re-asks included
    runs: int = 0  # times a worker took the job; more than one means one was lost
    output: Any = None
    result: JSONObject | None = None
    error: JSONObject | None = None
    usage: JSONObject | None = None
    metadata: JSONObject = field(default_factory=dict)
    history: list[JSONObject] = field(default_factory=list)  # one entry per attempt
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    expected_seconds: float | None = None
    idempotency_key: str | None = None
    dedup_key: str | None = None
    # Where the ended job is sent, and how its tries went: url, attempts, last_error.
    webhook: JSONObject | None = None
    webhook_state: WebhookState | None = None
    key_id: str | None = None  # the virtual key that submitted it, which alone may see it

    @property
    def webhook_url(self) -> str | None:
        return None if self.webhook is None else str(self.webhook["url"])

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def estimate(self, now: float) -> int:
        """Progress from 0 to 100, never falling between two looks: the worker's measure,
        or the share of the expected time gone by, whichever is ahead, held below 100
        until the job is done."""
        if self.status == "completed":
            return 100
        if self.done or self.started_at is None:
            return self.progress
        expected = self.expected_seconds or FIRST_GUESS_SECONDS
        by_time = int(CEILING * min(1.0, (now - self.started_at) / expected))
        return min(CEILING, max(self.progress, by_time))

    def poll_after_ms(self, now: float) -> int | None:
        """When a poller should look again: sooner as the expected end nears, never for a
        finished job."""
        if self.done:
            return None
        if self.started_at is None:
            return 1000
        expected = self.expected_seconds or FIRST_GUESS_SECONDS
        left = expected - (now - self.started_at)
        return int(min(5000, max(500, left * 1000 / 4)))

    @property
    def request_id(self) -> str:
        """The id its latest run is recorded under, for GET /v1/requests/{id}."""
        return f"{self.id}-{self.runs}"

    def public(self, now: float | None = None) -> JSONObject:
        """The job object of the API."""
        now = time.time() if now is None else now
        return {
            "id": self.id,
            "object": "job",
            "model": self.model,
            "status": self.status,
            "progress": self.estimate(now),
            "stage": self.stage,
            "message": ENDINGS.get(self.status) or MESSAGES[self.stage],
            "poll_after_ms": self.poll_after_ms(now),
            "attempts": self.attempts,
            "request_id": self.request_id if self.runs else None,
            "output": self.output,
            "result": self.result,
            "error": self.error,
            "usage": self.usage,
            "created_at": int(self.created_at),
            "started_at": _seconds(self.started_at),
            "finished_at": _seconds(self.finished_at),
            "metadata": self.metadata,
            "history": self.history,
            "webhook": self.webhook and {**self.webhook, "state": self.webhook_state},
            "key_id": self.key_id,
        }


def _seconds(moment: float | None) -> int | None:
    return None if moment is None else int(moment)
