"""Bytes -> Arrow arrays of lines, column-at-a-time, keeping every line.

Fast path: pyarrow's multi-threaded CSV reader splits and UTF-8-validates a whole chunk
(one column, a delimiter that never occurs, no quoting). Any chunk it cannot take as is
(invalid UTF-8, control bytes, CR, over-long lines) goes through a per-line path that
keeps each line and names what is wrong with it.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

# Bytes that make the CSV fast path unsafe: \x01 is its delimiter, \r a line break to it,
# NUL and other control bytes mark binary junk that the per-line path labels.
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
    if b"\x00" not in chunk.translate(_CONTROL_TABLE):
        fast = _csv_lines(chunk, max_line_bytes)
        if fast is not None:
            return Lines(fast, pa.nulls(len(fast), pa.string()), 0)
    return _careful_lines(chunk, max_line_bytes)


def _csv_lines(chunk: bytes, max_line_bytes: int) -> pa.Array | None:
    block = max(1 << 20, min(len(chunk), 8 << 20))
    if len(chunk) > block and max_line_bytes >= block:
        return None
    try:
        table = pacsv.read_csv(
            io.BytesIO(chunk),
            read_options=pacsv.ReadOptions(column_names=["line"], block_size=block),
            parse_options=pacsv.ParseOptions(delimiter="\x01", quote_char=False, escape_char=False,
                                             newlines_in_values=False, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowException):
        return None  # invalid UTF-8, a line longer than a block: take the careful path
    col = table.column("line").combine_chunks()
    if len(col) and pc.max(pc.binary_length(col)).as_py() > max_line_bytes:
        return None
    return col


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
