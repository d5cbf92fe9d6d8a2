"""Reading log files in batches (exporter/sources/files.py)."""
from __future__ import annotations

import itertools
from pathlib import Path

from exporter.sources.files import FINGERPRINT_BYTES, chunks, open_log

LINE = b"Nov  1 00:00:00 mx1 postfix/qmgr[1]: 4F1A2B3C4D: removed\n"


def _read(path: Path, start: int, final: bool) -> list[tuple[bytes, int]]:
    log = open_log(str(path))
    try:
        return [(bytes(chunk), end) for chunk, end in chunks(log, start, 1 << 16, final)]
    finally:
        log.close()


def test_a_small_followed_file_is_read_although_it_all_fits_in_the_head(tmp_path: Path) -> None:
    path = tmp_path / "mail.log"
    path.write_bytes(LINE * 3 + b"Nov  1 00:00:01 mx1 postfix/qmgr[1]: half a li")
    # followed: the whole lines now, the unfinished one later
    assert _read(path, 0, final=False) == [(LINE * 3, len(LINE) * 3)]
    assert _read(path, len(LINE) * 3, final=False) == []
    # finished: everything
    whole = path.read_bytes()
    assert b"".join(c for c, _ in _read(path, 0, final=True)) == whole


def test_resuming_inside_and_after_the_head(tmp_path: Path) -> None:
    path = tmp_path / "mail.log"
    path.write_bytes(LINE * 100)  # larger than the head
    got = _read(path, len(LINE) * 10, final=False)
    assert b"".join(c for c, _ in got) == LINE * 90 and got[-1][1] == len(LINE) * 100
    got = _read(path, len(LINE) * 60, final=False)
    assert b"".join(c for c, _ in got) == LINE * 40


def test_a_line_longer_than_a_batch_comes_whole_and_chunks_end_on_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "mail.log"
    long_line = b"Nov  1 00:00:00 mx1 postfix/cleanup[1]: 4F1A2B3C4D: " + b"x" * (3 << 16) + b"\n"
    content = LINE * 3000 + long_line + LINE * 3000
    path.write_bytes(content)
    got = _read(path, 0, final=True)
    assert b"".join(c for c, _ in got) == content
    assert all(c.endswith(b"\n") for c, _ in got)
    assert [end for _, end in got] == list(itertools.accumulate(len(c) for c, _ in got))
    assert any(long_line in c for c, _ in got)
    # the buffer the long line grew goes back to the batch size after it
    assert all(len(c) <= FINGERPRINT_BYTES + (1 << 16) for c, _ in got if long_line not in c)
    assert sum(len(c) for c, _ in got if long_line not in c) > 1 << 16


def test_chunks_fill_the_batch_whatever_unfinished_line_the_last_one_left(tmp_path: Path) -> None:
    path = tmp_path / "mail.log"
    content = b"".join(LINE.replace(b"removed", b"removed" + b"!" * (i % 37)) for i in range(20000))
    path.write_bytes(content)
    got = _read(path, 0, final=True)
    assert b"".join(c for c, _ in got) == content
    # every chunk but the last is a full batch less at most one line
    assert all((1 << 16) - len(LINE) - 37 < len(c) <= FINGERPRINT_BYTES + (1 << 16) for c, _ in got[:-1])
