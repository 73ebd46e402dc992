"""Telling that an upstream's content filter stopped an answer, so that a model configured
with ``fallback_on_content_filter`` can hand the request to its fallback.

A whole reply is judged when it arrives. A stream is judged on its start: its
chunks are held back until the first words (or a tool call) or the filter's
finish reason, since once words have gone to the client the answer cannot be
taken back and given by another model.
"""

from __future__ import annotations

from ..errors import UpstreamError
from ..providers import ChunkStream
from ..schemas import JSONObject

FINISH = "content_filter"


class ContentFiltered(UpstreamError):
    status = 400
    type = "invalid_request_error"
    default_code = FINISH

    def __init__(self, model: str) -> None:
        super().__init__(f"The content filter of '{model}' stopped the answer.")


def filtered(reply: object) -> bool:
    """Whether a whole reply ended on the content filter."""
    if not isinstance(reply, dict):
        return False
    return any(c.get("finish_reason") == FINISH for c in reply.get("choices") or ())


async def screened(source: ChunkStream, first: list[JSONObject], model: str) -> list[JSONObject]:
    """The start of a stream up to and with its first words, as one batch; a stream that the
    filter ended before any words is a ``ContentFiltered``."""
    held: list[JSONObject] = []
    batch: list[JSONObject] | None = first
    while batch is not None:
        held += batch
        for chunk in batch:
            for choice in chunk.get("choices") or ():
                if choice.get("finish_reason") == FINISH:
                    raise ContentFiltered(model)
                if _spoke(choice):
                    return held
        batch = await anext(source, None)
    return held


def _spoke(choice: JSONObject) -> bool:
    delta = choice.get("delta") or {}
    return bool(
        choice.get("text")  # a legacy completion's chunk
        or delta.get("content")
        or delta.get("tool_calls")
        or delta.get("refusal")
        or delta.get("function_call")
    )
