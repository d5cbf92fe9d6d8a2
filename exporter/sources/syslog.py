"""Syslog intake: RFC 3164 and RFC 5424 messages -> lines in the format the parser reads.

RFC 3164 (`<PRI>Mmm dd hh:mm:ss host tag[pid]: msg`) loses only its PRI. RFC 5424
(`<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`) becomes `TIMESTAMP HOST APP[PROCID]: MSG`.
TCP framing is either octet counting (`LEN SP MSG`) or one message per line (RFC 6587).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

_PRI = re.compile(rb"^<(\d{1,3})>")
_NILVALUE = "-"


def to_log_line(message: bytes, peer_host: str | None = None) -> str:
    """One syslog message as a parser line; a message without a header gets the time of arrival."""
    text = message.rstrip(b"\r\n")
    m = _PRI.match(text)
    if m:
        text = text[m.end():]
    line = text.decode("utf-8", "backslashreplace")
    if line.startswith("1 "):
        converted = _rfc5424(line[2:])
        if converted is not None:
            return converted
    if re.match(r"^[A-Z][a-z]{2} [ 0-9]?\d \d\d:\d\d:\d\d ", line) or re.match(r"^\d{4}-\d\d-\d\dT", line):
        return line
    now = datetime.now(timezone.utc).isoformat()
    return f"{now} {peer_host or 'unknown'} {line}"


def _rfc5424(rest: str) -> str | None:
    parts = rest.split(" ", 5)
    if len(parts) < 5:
        return None
    ts, host, app, procid, _msgid = parts[:5]
    msg = parts[5] if len(parts) > 5 else ""
    msg = _strip_structured_data(msg)
    if msg.startswith("\ufeff"):
        msg = msg[1:]
    if ts == _NILVALUE:
        ts = datetime.now(timezone.utc).isoformat()
    tag = app if app != _NILVALUE else "unknown"
    if procid != _NILVALUE:
        tag = f"{tag}[{procid}]"
    return f"{ts} {host if host != _NILVALUE else 'unknown'} {tag}: {msg}"


def _strip_structured_data(msg: str) -> str:
    """Drop RFC 5424 STRUCTURED-DATA: '-' or [elements] (']' inside values is escaped)."""
    if msg == _NILVALUE:
        return ""
    if msg.startswith(_NILVALUE + " "):
        return msg[2:]
    pos = 0
    while pos < len(msg) and msg[pos] == "[":
        pos += 1
        while pos < len(msg):
            if msg[pos] == "\\":
                pos += 2
                continue
            pos += 1
            if msg[pos - 1] == "]":
                break
    if pos == 0:
        return msg
    return msg[pos + 1:] if msg[pos:pos + 1] == " " else msg[pos:]


class FrameDecoder:
    """Splits a TCP byte stream into syslog messages: octet-counted or newline-delimited."""

    def __init__(self, max_message_bytes: int = 64 << 10) -> None:
        self.buffer = b""
        self.max = max_message_bytes

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        out: list[bytes] = []
        while self.buffer:
            m = re.match(rb"^(\d{1,7}) ", self.buffer)
            if m:  # octet counting
                size = int(m[1])
                start = m.end()
                if len(self.buffer) < start + size:
                    break
                out.append(self.buffer[start:start + size])
                self.buffer = self.buffer[start + size:]
                continue
            cut = self.buffer.find(b"\n")
            if cut < 0:
                if len(self.buffer) > self.max:  # an endless line: pass it on as is, it is counted later
                    out.append(self.buffer)
                    self.buffer = b""
                break
            out.append(self.buffer[:cut])
            self.buffer = self.buffer[cut + 1:]
        return [msg for msg in out if msg.strip()]
