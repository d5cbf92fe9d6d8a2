"""Bytes -> Arrow arrays of lines, column-at-a-time, keeping every line.

Fast path: numpy finds the newlines and the chunk without them is the Arrow data buffer,
UTF-8-validated by Arrow in one go. Any chunk it cannot take as is
(invalid UTF-8, control bytes, CR, over-long lines) goes through a per-line path that
keeps each line and names what is wrong with it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

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


def split_lines(chunk: bytes, max_line_bytes: int) -> Lines:
    """Split a chunk of complete lines (the last may lack its newline); blank lines are dropped."""
    if not chunk:
        return Lines(pa.array([], pa.string()), pa.array([], pa.string()), 0)
    fast = _fast_lines(chunk, max_line_bytes)
    if fast is not None:
        return Lines(fast, pa.nulls(len(fast), pa.string()), 0)
    return _careful_lines(chunk, max_line_bytes)


def _fast_lines(chunk: bytes, max_line_bytes: int) -> pa.Array | None:
    """Newlines found with numpy, the text without them becomes the Arrow data buffer as is;
    None when the chunk needs the per-line path (control bytes, CR, invalid UTF-8, long lines)."""
    buf = np.frombuffer(chunk, np.uint8)
    nl = np.flatnonzero(buf == 10)
    if np.count_nonzero(buf < 32) != len(nl) + chunk.count(b"\t") or b"\x7f" in chunk:
        return None
    n_all = len(nl) + (0 if chunk.endswith(b"\n") else 1)
    starts = np.empty(n_all, np.int64)
    starts[0] = 0
    starts[1:] = nl[:n_all - 1] + 1
    ends = np.empty(n_all, np.int64)
    ends[:len(nl)] = nl
    if n_all > len(nl):
        ends[-1] = len(chunk)
    lengths = ends - starts
    if lengths.max() > max_line_bytes:
        return None
    keep = lengths > 0
    data = chunk.replace(b"\n", b"") if len(nl) else chunk
    offsets = (starts - np.arange(n_all, dtype=np.int64))[keep]
    large = len(data) >= 1 << 31
    out = np.empty(len(offsets) + 1, np.int64 if large else np.int32)
    out[:-1] = offsets
    out[-1] = len(data)
    arr = pa.Array.from_buffers(pa.large_string() if large else pa.string(), len(offsets),
                                [None, pa.py_buffer(out), pa.py_buffer(data)])
    try:
        arr.validate(full=True)  # UTF-8
    except pa.ArrowInvalid:
        return None
    return arr if not large else arr.cast(pa.string())


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
