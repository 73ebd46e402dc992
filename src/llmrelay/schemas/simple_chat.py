"""The simple question-and-answer API (``/chat``), for clients that want no SDK."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints


class SimpleChatRequest(BaseModel):
    question: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        description="The user's question."
    )
    system: str | None = Field(default=None, description="An optional system prompt.")
    model: str | None = Field(
        default=None, description="A configured model; the default if omitted."
    )


class SimpleChatResponse(BaseModel):
    answer: str
    model: str
