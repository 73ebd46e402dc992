"""The SSE decoder copes with the framing real upstreams send."""

from __future__ import annotations

from llmrelay.streaming import SSEDecoder, SSEEvent, plain_data_events


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


def test_crlf_split_between_reads_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [SSEEvent(None, b"a\nb")]


def test_plain_data_events_fast_path() -> None:
    block = b'data: {"a": 1}\n\ndata: {"b": 2}\n\ndata: [DONE]\n\n'
    assert plain_data_events(block) == (
        b'[{"a": 1},{"b": 2}]',
        b'data: {"a": 1}\n\ndata: {"b": 2}\n\n',
        True,
    )
    assert plain_data_events(b"data: [DONE]\n\n") == (b"[]", b"", True)
    for other in (
        b"event: x\ndata: {}\n\n",
        b'data: {"error": {}}\n\n',
        b"data: [DONE]\n\ndata: {}\n\n",
        b": ping\n\n",
    ):
        assert plain_data_events(other) is None
