"""The SSE decoder copes with the framing real upstreams send."""

from __future__ import annotations

from llmrelay.streaming import SSEDecoder, SSEEvent


def test_events_split_across_reads() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a"') == []
    assert decoder.feed(b": 1}\n\ndata: [DO") == [SSEEvent(None, b'{"a": 1}')]
    assert decoder.feed(b"NE]\n\n") == [SSEEvent(None, b"[DONE]")]


def test_crlf_event_names_comments_and_multiline_data() -> None:
    decoder = SSEDecoder()
    raw = (
        b': keep-alive\r\n\r\nevent: message_start\r\ndata: {"x":\r\ndata: 1}\r\n\r\ndata:tight\n\n'
    )
    assert decoder.feed(raw) == [
        SSEEvent("message_start", b'{"x":\n1}'),
        SSEEvent(None, b"tight"),
    ]
