"""The SSE decoder copes with the framing real upstreams send."""

from __future__ import annotations

from llmrelay.streaming import NDJSONDecoder, SSEDecoder, plain_chunks


def test_events_split_across_reads() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a"') == []
    assert decoder.feed(b": 1}\n\ndata: [DO") == [b'{"a": 1}']
    assert decoder.feed(b"NE]\n\n") == [b"[DONE]"]


def test_crlf_event_names_comments_and_multiline_data() -> None:
    decoder = SSEDecoder()
    raw = (
        b': keep-alive\r\n\r\nevent: message_start\r\ndata: {"x":\r\ndata: 1}\r\n\r\ndata:tight\n\n'
    )
    assert decoder.feed(raw) == [b'{"x":\n1}', b"tight"]
    named = b'event: ping\ndata: {"type": "ping"}\n\nevent: done\n\n'
    assert decoder.feed(named) == [b'{"type": "ping"}']  # an event with no data is no event
    assert decoder.close() == []


def test_crlf_split_between_reads_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [b"a\nb"]


def test_ndjson_lines_across_reads_and_an_unended_last_line() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a": 1}\n{"b"') == [b'{"a": 1}']
    assert decoder.feed(b": 2}\n\n{}") == [b'{"b": 2}']
    assert decoder.close() == [b"{}"]
    assert decoder.close() == []


def test_plain_chunks_fast_path() -> None:
    block = b'data: {"a": 1}\n\ndata: {"b": "[DONE]"}\n\ndata: [DONE]\n\n'
    assert plain_chunks(block) == (
        [{"a": 1}, {"b": "[DONE]"}],
        b'data: {"a": 1}\n\ndata: {"b": "[DONE]"}\n\n',
        True,
    )
    assert plain_chunks(b"data: {}\n\n") == ([{}], b"data: {}\n\n", False)
    assert plain_chunks(b"data: [DONE]\n\n") == ([], b"", True)
    for other in (
        b"event: x\ndata: {}\n\n",
        b'data: {"error": {}}\n\n',
        b"data: [DONE]\n\ndata: {}\n\n",
        b": ping\n\n",
        b"data: {}\n\n\ndata: {}\n\n",
        b"data: {},{}\n\n",
        b"data: []\n\n",
        b"data: \n\n",
        b"data: {}\r\n\r\n",
        b'data: {"a":\n\ndata: 1}\n\n',
    ):
        assert plain_chunks(other) is None, other
