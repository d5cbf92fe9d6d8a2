"""Loki push bodies and syslog messages become lines the parser reads."""
from __future__ import annotations

import gzip
import json

import cramjam
import pytest

from exporter.sources import loki, syslog


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def push_request(streams: list[tuple[str, list[tuple[int, int, str]]]]) -> bytes:
    """A Loki push.proto PushRequest, snappy block-compressed, as loki.write sends it."""
    body = []
    for labels, entries in streams:
        stream = [_field(1, labels.encode())]
        for seconds, nanos, line in entries:
            ts = _field(1, seconds) + _field(2, nanos)
            stream.append(_field(2, _field(1, ts) + _field(2, line.encode())))
        stream.append(_field(3, 12345))  # hash, ignored
        body.append(_field(1, b"".join(stream)))
    return bytes(cramjam.snappy.compress_raw(b"".join(body)))


LINE = "Nov 29 03:00:00 mx1 postfix/qmgr[1]: 0A1B2C3D4E: removed"


def test_protobuf_snappy_push() -> None:
    body = push_request([('{host="mx1", job="postfix"}', [(1764385200, 5, LINE), (1764385201, 0, "second")])])
    entries = loki.decode(body, "application/x-protobuf")
    assert [(e.labels, e.ts_ns, e.line) for e in entries] == [
        ({"host": "mx1", "job": "postfix"}, 1764385200_000000005, LINE),
        ({"host": "mx1", "job": "postfix"}, 1764385201_000000000, "second")]


def test_json_push_plain_and_gzip() -> None:
    doc = {"streams": [{"stream": {"host": "mx2"}, "values": [["1764385200000000000", LINE]]}]}
    for body, enc in ((json.dumps(doc).encode(), None), (gzip.compress(json.dumps(doc).encode()), "gzip")):
        [entry] = loki.decode(body, "application/json", enc)
        assert entry.labels == {"host": "mx2"} and entry.line == LINE


@pytest.mark.parametrize("body,ctype,message", [
    (b"not snappy at all", "application/x-protobuf", "snappy"),
    (b"{", "application/json", "not JSON"),
    (b'{"streams": 3}', "application/json", "streams"),
    (b'{"streams": [{"stream": {}, "values": [["x", "l"]]}]}', "application/json", "nanoseconds"),
    (b"x", "text/plain", "Content-Type"),
])
def test_malformed_push_bodies_say_what_is_wrong(body: bytes, ctype: str, message: str) -> None:
    with pytest.raises(loki.PushFormatError, match=message):
        loki.decode(body, ctype)


def test_labels_with_escapes() -> None:
    assert loki.parse_labels('{a="x\\"y", b="c\\\\d"}') == {"a": 'x"y', "b": "c\\d"}
    with pytest.raises(loki.PushFormatError):
        loki.parse_labels("host=mx1")


def test_loki_entry_without_header_gets_time_and_host() -> None:
    entry = loki.Entry({"host": "mx9"}, 1764385200_000000000, "postfix/smtpd[5]: connect from a[192.0.2.1]")
    assert loki.to_log_line(entry) == "2025-11-29T03:00:00+00:00 mx9 postfix/smtpd[5]: connect from a[192.0.2.1]"
    assert loki.to_log_line(loki.Entry({}, 0, LINE)) == LINE


def test_syslog_rfc3164_and_5424() -> None:
    assert syslog.to_log_line(b"<22>" + LINE.encode()) == LINE
    line = syslog.to_log_line(b'<22>1 2026-11-29T03:00:00.5Z mx1 postfix/smtpd 4242 - [x@1 a="b\\]c"] '
                              b"connect from a[192.0.2.1]")
    assert line == "2026-11-29T03:00:00.5Z mx1 postfix/smtpd[4242]: connect from a[192.0.2.1]"
    assert syslog.to_log_line(b"<22>1 2026-11-29T03:00:00Z mx1 postfix/qmgr - - - 0A1B2C3D4E: removed") == \
        "2026-11-29T03:00:00Z mx1 postfix/qmgr: 0A1B2C3D4E: removed"


def test_tcp_framing_octet_counted_and_newlines() -> None:
    dec = syslog.FrameDecoder()
    msg = b"<22>" + LINE.encode()
    framed = str(len(msg)).encode() + b" " + msg
    assert dec.feed(framed[:10]) == []
    assert dec.feed(framed[10:] + msg + b"\n" + msg[:5]) == [msg, msg]
    assert dec.feed(msg[5:] + b"\n") == [msg]
