"""Bytes -> Arrow arrays of lines, column-at-a-time, keeping every line.

Fast path: one native pass finds the newlines and copies the chunk without them into the
Arrow data buffer, UTF-8-validated by Arrow in one go. Any chunk it cannot take as is
(invalid UTF-8, control bytes, CR, over-long lines) goes through a per-line path that
keeps each line and names what is wrong with it.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

# the native parser's module also splits chunks: one C extension for the per-byte work
from exporter.parser import native

# Control bytes (other than tab and newline; CR included) mark binary junk or CRLF endings
# that the per-line path labels or strips.
_CONTROL = bytes(b for b in range(32) if b not in (9, 10)) + b"\x7f"
_CONTROL_TABLE = bytes.maketrans(_CONTROL, b"\x00" * len(_CONTROL))


@dataclass(frozen=True)
class Lines:
    text: pa.Array      # string: the line as text (invalid UTF-8 shown as \\xNN escapes)
    problem: pa.Array   # string or null: why the line is not parsed as is ('binary', 'too_long')
    invalid_utf8: int   # lines whose bytes were not UTF-8 (they are still parsed)

    def __len__(self) -> int:
        return len(self.text)


def split_lines(chunk: bytes | memoryview, max_line_bytes: int) -> Lines:
    """Split a chunk of complete lines (the last may lack its newline); blank lines are dropped."""
    if not chunk:
        return Lines(pa.array([], pa.string()), pa.array([], pa.string()), 0)
    fast = native.split(chunk, max_line_bytes)
    if fast is not None:
        return Lines(fast, pa.nulls(len(fast), pa.string()), 0)
    return _careful_lines(bytes(chunk), max_line_bytes)


def _careful_lines(chunk: bytes, max_line_bytes: int) -> Lines:
    texts: list[str] = []
    problems: list[str | None] = []
    invalid = 0
    for raw in chunk.split(b"\n"):
        if raw.endswith(b"\r"):  # CRLF logs: the CR is line ending, not content
            raw = raw[:-1]
        if not raw:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "backslashreplace")
            invalid += 1
        problem = None
        if len(raw) > max_line_bytes:
            problem = "too_long"
        elif b"\x00" in raw.translate(_CONTROL_TABLE):
            problem = "binary"
        texts.append(text)
        problems.append(problem)
    return Lines(pa.array(texts, pa.string()), pa.array(problems, pa.string()), invalid)
