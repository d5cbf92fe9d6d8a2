"""Loki push API bodies -> log lines, so Alloy's `loki.write` can ship mail logs to us.

Two forms, as Loki accepts them: protobuf `PushRequest` compressed with raw (block) snappy
(what `loki.write` sends), and JSON (`{"streams":[{"stream":{...},"values":[[ns, line]]}]}`),
optionally gzip-compressed. The protobuf is small enough to read with a wire-format walker.
"""
from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import cramjam


class PushFormatError(ValueError):
    """The body is not a Loki push request; the message says what is wrong."""


@dataclass(frozen=True)
class Entry:
    labels: dict[str, str]
    ts_ns: int
    line: str


def decode(body: bytes, content_type: str | None, content_encoding: str | None = None) -> list[Entry]:
    ctype = (content_type or "").split(";")[0].strip().lower()
    if (content_encoding or "").lower() == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise PushFormatError(f"gzip body cannot be decompressed: {exc}") from exc
    if ctype in ("application/json", "text/json"):
        return _decode_json(body)
    if ctype in ("application/x-protobuf", "application/protobuf", ""):
        try:
            raw = bytes(cramjam.snappy.decompress_raw(body))
        except Exception as exc:  # cramjam raises its own DecompressionError
            raise PushFormatError(f"body is not raw snappy: {exc}") from exc
        return _decode_protobuf(raw)
    raise PushFormatError(f"unsupported Content-Type {content_type!r} (use application/x-protobuf or application/json)")


# -- JSON ---------------------------------------------------------------------------------

def _decode_json(body: bytes) -> list[Entry]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PushFormatError(f"body is not JSON: {exc}") from exc
    streams = doc.get("streams") if isinstance(doc, dict) else None
    if not isinstance(streams, list):
        raise PushFormatError("JSON body needs a 'streams' list")
    out: list[Entry] = []
    for i, stream in enumerate(streams):
        if not isinstance(stream, dict) or not isinstance(stream.get("values"), list):
            raise PushFormatError(f"streams[{i}] needs 'stream' labels and a 'values' list")
        labels = stream.get("stream") or {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise PushFormatError(f"streams[{i}].stream must map label names to strings")
        for j, value in enumerate(stream["values"]):
            if not isinstance(value, list) or len(value) < 2 or not isinstance(value[1], str):
                raise PushFormatError(f"streams[{i}].values[{j}] must be [\"<epoch ns>\", \"<line>\"]")
            try:
                ts = int(value[0])
            except (TypeError, ValueError) as exc:
                raise PushFormatError(f"streams[{i}].values[{j}][0] is not an epoch in nanoseconds") from exc
            out.append(Entry(labels, ts, value[1]))
    return out


# -- protobuf wire format -------------------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise PushFormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise PushFormatError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) for each field; length-delimited values as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise PushFormatError("truncated length-delimited field")
            yield number, buf[pos:pos + size]
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise PushFormatError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise PushFormatError("truncated fixed-size field")


def _decode_protobuf(raw: bytes) -> list[Entry]:
    out: list[Entry] = []
    for number, stream in _fields(raw):
        if number != 1 or not isinstance(stream, bytes):
            continue
        labels: dict[str, str] = {}
        entries: list[tuple[int, str]] = []
        for n, value in _fields(stream):
            if n == 1 and isinstance(value, bytes):
                labels = parse_labels(_text(value))
            elif n == 2 and isinstance(value, bytes):
                entries.append(_entry(value))
        out.extend(Entry(labels, ts, line) for ts, line in entries)
    return out


def _entry(buf: bytes) -> tuple[int, str]:
    ts_ns, line = 0, ""
    for n, value in _fields(buf):
        if n == 1 and isinstance(value, bytes):
            seconds = nanos = 0
            for tn, tv in _fields(value):
                if tn == 1 and isinstance(tv, int):
                    seconds = tv - (1 << 64) if tv >= 1 << 63 else tv
                elif tn == 2 and isinstance(tv, int):
                    nanos = tv
            ts_ns = seconds * 1_000_000_000 + nanos
        elif n == 2 and isinstance(value, bytes):
            line = _text(value)
    return ts_ns, line


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_labels(text: str) -> dict[str, str]:
    """`{host="mx1", job="postfix"}` -> dict; escapes \\" \\\\ \\n as in Prometheus label values."""
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise PushFormatError(f"stream labels must look like {{name=\"value\"}}, got {text[:80]!r}")
    body = body[1:-1]
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        m = _LABEL.match(body, pos)
        if not m:
            raise PushFormatError(f"bad stream labels {text[:80]!r}")
        labels[m[1]] = m[2].replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        pos = m.end()
    return labels


# -- to parser input ------------------------------------------------------------------------

_HAS_HEADER = re.compile(r"^(?:[A-Z][a-z]{2} [ 0-9]?\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)")


def to_log_line(entry: Entry, host_label: str = "host") -> str:
    """A line the parser reads: kept as is when it has a syslog header, else the entry's time and
    host label are put in front of it (Alloy's syslog receiver ships the message alone)."""
    line = entry.line.rstrip("\n")
    if _HAS_HEADER.match(line):
        return line
    host = entry.labels.get(host_label) or entry.labels.get("hostname") or "unknown"
    ts = datetime.fromtimestamp(entry.ts_ns / 1e9, timezone.utc).isoformat()
    app = entry.labels.get("app") or entry.labels.get("syslog_app_name")
    if app and not re.match(r"^[^ \[\]:]+(?:\[\d+\])?: ", line):
        line = f"{app}: {line}"
    return f"{ts} {host} {line}"
