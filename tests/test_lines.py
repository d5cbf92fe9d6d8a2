"""Splitting chunks into lines (exporter/sources/lines.py): the native fast path and the
per-line path give every line, and name what is wrong with the odd ones."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.sources.lines import split_lines

ROOT = Path(__file__).resolve().parent.parent
LINE = "Nov  1 00:00:00 mx1 postfix/qmgr[1]: 4F1A2B3C4D: removed"


def _texts(chunk: bytes | memoryview, max_line_bytes: int = 1 << 20) -> tuple[list, list, int]:
    lines = split_lines(chunk, max_line_bytes)
    return lines.text.to_pylist(), lines.problem.to_pylist(), lines.invalid_utf8


@pytest.mark.parametrize("chunk", [
    f"{LINE}\n{LINE}\n",
    f"{LINE}\n\n\n{LINE}",                                  # blank lines dropped, last without newline
    f"{LINE} Subject: Grüße ☃ from Zürich\n{LINE}\ttab\n",  # UTF-8 and tabs stay on the fast path
])
def test_lines_come_out_whole_and_clean(chunk: str) -> None:
    texts, problems, invalid = _texts(chunk.encode())
    assert texts == [t for t in chunk.split("\n") if t]
    assert problems == [None] * len(texts) and invalid == 0


def test_a_view_into_a_larger_buffer_is_split_like_bytes() -> None:
    buf = bytearray(f"{LINE}\n{LINE}\nnot yet".encode())
    assert _texts(memoryview(buf)[:2 * (len(LINE) + 1)])[0] == [LINE, LINE]


def test_only_blank_lines_give_no_line() -> None:
    assert _texts(b"\n\n\n")[0] == []


def test_odd_lines_are_kept_and_named() -> None:
    chunk = (f"{LINE}\r\n".encode()                       # CRLF: the CR is line ending
             + b"bad \xff\xfe utf-8\n"                     # kept with escapes, counted
             + b"\x00\x01 junk\n"                          # binary
             + b"x" * 100 + b"\n"                          # over the limit below
             + LINE.encode() + b"\n")
    texts, problems, invalid = _texts(chunk, max_line_bytes=80)
    assert texts == [LINE, "bad \\xff\\xfe utf-8", "\x00\x01 junk", "x" * 100, LINE]
    assert problems == [None, None, "binary", "too_long", None]
    assert invalid == 1


def test_invalid_utf8_without_control_bytes_takes_the_careful_path() -> None:
    texts, problems, invalid = _texts(f"{LINE}\n".encode() + b"caf\xe9\n")
    assert texts == [LINE, "caf\\xe9"] and problems == [None, None] and invalid == 1


@pytest.mark.parametrize("module", ["exporter.sources.lines", "exporter.parser", "exporter.sources.files"])
def test_each_module_imports_on_its_own(module: str) -> None:
    """The splitter calls the parser's native module; the parser must not import it back."""
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
