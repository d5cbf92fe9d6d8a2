"""Log files: plain or gzip, rotated series in chronological order, stdin; chunks of whole lines.

A source is known by the first bytes of its content (its fingerprint), so `mail.log.1`
today and `mail.log.2.gz` tomorrow are recognised as the same, already-read log.
"""
from __future__ import annotations

import gzip
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

FINGERPRINT_BYTES = 1024
_GZIP_MAGIC = b"\x1f\x8b"
_ROTATION = re.compile(r"^(?P<base>.+?)(?:\.(?P<num>\d+)|-(?P<date>\d{8,10}))?(?P<gz>\.gz)?$")


class SourceError(Exception):
    """A log that cannot be read; the message names it."""


@dataclass
class LogInput:
    name: str                  # path as given, or "-" for stdin
    stream: BinaryIO           # decompressed content
    mtime: datetime            # anchors the year of year-less timestamps
    compressed: bool
    head: bytes = b""          # bytes already read from the stream for the fingerprint

    @property
    def fingerprint(self) -> bytes:
        return self.head[:FINGERPRINT_BYTES]

    def close(self) -> None:
        if self.stream is not sys.stdin.buffer:
            self.stream.close()


def open_log(name: str) -> LogInput:
    """Open a plain or gzip file (told apart by content, not name), or stdin for '-'."""
    if name == "-":
        log = LogInput("-", sys.stdin.buffer, datetime.now(timezone.utc), False)
    else:
        try:
            raw = open(name, "rb")  # noqa: SIM115 - closed by LogInput.close
            st = os.fstat(raw.fileno())
        except OSError as exc:
            raise SourceError(f"{name}: {exc.strerror or exc}") from exc
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw  # type: ignore[assignment]
        log = LogInput(name, stream, datetime.fromtimestamp(st.st_mtime, timezone.utc), compressed)
    try:
        log.head = log.stream.read(FINGERPRINT_BYTES)
    except (OSError, EOFError) as exc:
        log.close()
        raise SourceError(f"{name}: cannot read: {exc}") from exc
    return log


def chronological(names: list[str]) -> list[str]:
    """Order rotated series oldest first: mail.log.2.gz, mail.log.1, mail.log (also -YYYYMMDD)."""
    def key(name: str) -> tuple:
        m = _ROTATION.match(os.path.basename(name))
        assert m is not None  # the pattern matches every name
        base = os.path.join(os.path.dirname(name), m["base"])
        if m["num"] is not None:
            age = (0, -int(m["num"]), "")
        elif m["date"] is not None:
            age = (1, 0, m["date"])
        else:
            age = (2, 0, "")
        return (first_index[base], age)

    first_index: dict[str, int] = {}
    for i, name in enumerate(names):
        m = _ROTATION.match(os.path.basename(name))
        assert m is not None
        first_index.setdefault(os.path.join(os.path.dirname(name), m["base"]), i)
    return sorted(names, key=key)


def chunks(log: LogInput, start_offset: int, batch_bytes: int, final: bool = True) -> Iterator[tuple[memoryview, int]]:
    """Yield (whole lines, offset after them) from start_offset to the end of the content.

    Offsets count decompressed bytes. A last line without its newline is yielded at the end
    only when `final` (a finished file); a followed file may still be writing it.

    Each chunk is a view into one buffer that the next read reuses: it is valid until the
    next chunk is asked for (the splitter copies the lines out). Reading into one buffer
    spares a fresh allocation and two copies of every batch.
    """
    stream = log.stream
    head = log.head
    if start_offset >= len(head):
        _skip(stream, start_offset - len(head))
        carry, offset = b"", start_offset
    else:
        carry, offset = head[start_offset:], start_offset
    size = len(carry) + batch_bytes
    buf = bytearray(size)
    buf[:len(carry)] = carry
    filled = len(carry)  # bytes in buf: lines not yet handed on
    while True:
        if filled == len(buf):  # a line longer than the buffer is still being read
            buf = buf[:filled] + bytearray(batch_bytes)
        try:
            # the rest of the buffer, after the unfinished line the last chunk left: each chunk
            # is read into the same memory (a fresh buffer a batch cost a copy and page faults)
            got = _read_into(stream, memoryview(buf)[filled:])
        except (OSError, EOFError) as exc:
            raise SourceError(f"{log.name}: read error at byte {offset + filled}: {exc}") from exc
        if not got:
            break
        filled += got
        cut = buf.rfind(b"\n", 0, filled) + 1
        if cut:
            yield memoryview(buf)[:cut], offset + cut
            offset += cut
            buf[:filled - cut] = buf[cut:filled]
            filled -= cut
            if len(buf) > size and filled < size:  # a long line grew it: back to the batch size
                buf = buf[:filled] + bytearray(size - filled)
    # what is left: lines still in the head (a small file is all head), and an unfinished
    # last line, which only a finished file hands on
    cut = filled if final else buf.rfind(b"\n", 0, filled) + 1
    if cut:
        yield memoryview(buf)[:cut], offset + cut


def _read_into(stream: BinaryIO, view: memoryview) -> int:
    """Fill `view` from the stream as read(n) would: until it is full or the stream ends."""
    total = 0
    while total < len(view):
        n = stream.readinto(view[total:])  # type: ignore[attr-defined]
        if not n:
            break
        total += n
    return total


def _skip(stream: BinaryIO, n: int) -> None:
    if n <= 0:
        return
    if stream.seekable():
        stream.seek(n, os.SEEK_CUR)
        return
    while n > 0:
        got = stream.read(min(n, 1 << 20))
        if not got:
            return
        n -= len(got)


def expand(names: list[str]) -> list[str]:
    """Check every named file exists and is readable before anything is written."""
    for name in names:
        if name == "-":
            continue
        path = Path(name)
        if not path.exists():
            raise SourceError(f"{name}: no such file")
        if path.is_dir():
            raise SourceError(f"{name}: is a directory")
        if not os.access(path, os.R_OK):
            raise SourceError(f"{name}: permission denied")
    return chronological([n for n in names if n != "-"]) + [n for n in names if n == "-"]
