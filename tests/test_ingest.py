"""Reading logs as a user hands them over: bad bytes, gzip, rotated series, stdin, missing files."""
from __future__ import annotations

import gzip
import os
import shutil
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from conftest import DATA, run_cli, search_json
from exporter.sources.files import chronological

GOLDEN = DATA / "golden"


def _counts(db: Path, category: str) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT name, sum(n)::BIGINT FROM line_counts WHERE category = ? GROUP BY 1",
                                [category]).fetchall())
    finally:
        con.close()


def _bad_input(path: Path) -> list[bytes]:
    lines = [
        b"Apr  2 10:00:00 mx1 postfix/smtpd[9701]: 6A7B8C9DAF: client=ok.example[198.51.100.5]",
        b"\x00\x01\x02\xff\xfe binary junk \x00\x00",
        b"Apr  2 10:00:00 mx1 postfix/cleanup[9702]: 6A7B8C9DAF: info: header Subject: Caf\xe9 cr\xe8me from "
        b"ok.example[198.51.100.5]; from=<a@ok.example> to=<b@example.org> proto=ESMTP helo=<ok.example>",
        b"Apr  2 10:00:00 mx1 postfix/cleanup[9702]: 6A7B8C9DAF: message-id=<latin1@ok.example>",
        b"Apr  2 10:00:01 mx1 postfix/qmgr[1000]: 6A7B8C9DAF: from=<a@ok.example>, size=10, nrcpt=1 (queue active)",
        b"Apr  2 10:00:01 mx1 postfix/smtpd[9701]: " + b"A" * (1 << 20),
        b"Apr  2 10:00:01 mx1 postfix/smtp[9703]: 6A7B8C9DAF: to=<b@exa",
        b"Apr  2 10:00:0",
        b"Apr  2 09:00:02 mx1 postfix/qmgr[1000]: 6A7B8C9DAF: removed",
        b"Apr  2 10:00:02 mx1 postfix/frobnicate[9704]: something new",
        b"Apr  2 10:00:02 mx1 postfix/smtpd[9705]: an unknown smtpd line",
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


def test_bad_input_is_counted_kept_and_never_crashes(tmp_path: Path, db: Path) -> None:
    log = tmp_path / "bad.log"
    lines = _bad_input(log)
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", str(log))
    assert _counts(db, "unparsed") == {"binary": 1, "too_long": 1, "bad_header": 1, "unknown_smtp": 1,
                                       "unknown_daemon": 1, "unknown_smtpd": 1}
    # the junk line and the Latin-1 subject are both not UTF-8; one line went back an hour
    assert _counts(db, "anomaly") == {"invalid_utf8": 2, "time_backwards": 1}
    assert sum(_counts(db, "kind").values()) == len(lines)
    con = duckdb.connect(str(db), read_only=True)
    kept = {r[0]: r[1] for r in con.execute("SELECT reason, length(line) FROM unparsed").fetchall()}
    con.close()
    assert kept["too_long"] > 1 << 20  # the 1 MB line is kept whole
    [rec] = search_json(db)
    assert rec["subject"] == "Caf\\xe9 cr\\xe8me"  # invalid UTF-8 shown as escapes, the line still parsed
    assert rec["status"] == "pending" and rec["message_id"] == "latin1@ok.example"


def test_missing_file_is_one_line_error_and_writes_nothing(tmp_path: Path, db: Path) -> None:
    good = GOLDEN / "delivery.log"
    proc = run_cli("ingest", "--db", str(db), str(good), str(tmp_path / "nope.log"), check=False)
    assert proc.returncode == 1
    err = proc.stderr.decode().strip()
    assert err.count("\n") == 0 and "nope.log" in err and "no such file" in err
    assert not db.exists()


def test_unreadable_file(tmp_path: Path, db: Path) -> None:
    if os.geteuid() == 0:
        proc = run_cli("ingest", "--db", str(db), str(tmp_path), check=False)  # a directory
        assert proc.returncode == 1 and "is a directory" in proc.stderr.decode()
        return
    log = tmp_path / "secret.log"
    log.write_text("x\n")
    log.chmod(0)
    proc = run_cli("ingest", "--db", str(db), str(log), check=False)
    assert proc.returncode == 1 and "permission denied" in proc.stderr.decode()


def test_rotated_series_any_order_plain_and_gzip(tmp_path: Path) -> None:
    """A message spanning mail.log.2.gz -> mail.log.1 -> mail.log is one message, whatever order given."""
    text = (GOLDEN / "retries.log").read_bytes().splitlines(keepends=True)
    (tmp_path / "mail.log.2.gz").write_bytes(gzip.compress(b"".join(text[:6])))
    (tmp_path / "mail.log.1").write_bytes(b"".join(text[6:12]))
    (tmp_path / "mail.log").write_bytes(b"".join(text[12:]))
    names = [str(tmp_path / n) for n in ("mail.log", "mail.log.1", "mail.log.2.gz")]
    assert chronological(names) == names[::-1]
    db = tmp_path / "s.duckdb"
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", *names)
    whole = tmp_path / "whole.duckdb"
    run_cli("ingest", "--db", str(whole), "--year", "2026", "--timezone", "UTC", str(GOLDEN / "retries.log"))
    assert search_json(db) == search_json(whole)
    assert {r["attempts"] for r in search_json(db)} == {3}


def test_rotation_recognised_by_content(tmp_path: Path) -> None:
    """After logrotate renames mail.log to mail.log.1 and compresses it, nothing is read twice."""
    src = (GOLDEN / "delivery.log").read_bytes()
    db = tmp_path / "s.duckdb"
    (tmp_path / "mail.log").write_bytes(src[: len(src) // 2].rsplit(b"\n", 1)[0] + b"\n")
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", str(tmp_path / "mail.log"))
    shutil.move(tmp_path / "mail.log", tmp_path / "mail.log.1")
    (tmp_path / "mail.log.1").write_bytes(src)  # it grew before rotation
    (tmp_path / "mail.log.1.gz").write_bytes(gzip.compress(src))
    (tmp_path / "mail.log.1").unlink()
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", str(tmp_path / "mail.log.1.gz"))
    whole = tmp_path / "whole.duckdb"
    run_cli("ingest", "--db", str(whole), "--year", "2026", "--timezone", "UTC", str(GOLDEN / "delivery.log"))
    assert search_json(db) == search_json(whole)


def test_stdin(db: Path) -> None:
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", "-",
            stdin=(GOLDEN / "bounces.log").read_bytes())
    assert len(search_json(db)) == 4


def test_timezone_option(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "Europe/Berlin", str(GOLDEN / "reuse.log"))
    times = sorted(r["time"] for r in search_json(db))
    assert times[0] == "2026-03-10T07:00:01Z"  # 08:00:01 CET
    proc = run_cli("ingest", "--db", str(db), "--timezone", "Mars/Olympus", str(GOLDEN / "reuse.log"), check=False)
    assert proc.returncode == 2 and "Mars/Olympus" in proc.stderr.decode()


def test_a_failed_batch_leaves_nothing_and_the_next_ingest_resumes(tmp_path: Path) -> None:
    # A batch's raw lines and attempts commit from transactions of their own just before the
    # batch does. When the batch then fails, those rows are past the store's next_seq: the
    # next batch drops them and writes its own, so nothing is duplicated or lost.
    from exporter.config import CorrelatorConfig, ParserConfig, ReaderConfig, StoreConfig
    from exporter.generator import generate
    from exporter.ingest import Pipeline
    from exporter.store.db import Store

    log = tmp_path / "mail.log"
    generate(str(log), 6_000, seed=5)
    configs = (ReaderConfig(batch_bytes=1 << 16), ParserConfig(year=2026, timezone="UTC"), CorrelatorConfig())

    def ingest(db: Path, fail_at_batch: int | None) -> None:
        store = Store(StoreConfig(path=db))
        batches = []

        def hook(con: duckdb.DuckDBPyConnection, info: object) -> None:
            batches.append(info)
            if len(batches) == fail_at_batch:
                raise RuntimeError("the disk is full")
        try:
            Pipeline(store, *configs, batch_hooks=[hook]).ingest_files([str(log)])
        finally:
            store.close()

    clean, failed = tmp_path / "clean.duckdb", tmp_path / "failed.duckdb"
    ingest(clean, None)
    try:
        ingest(failed, 3)
    except RuntimeError as exc:
        assert "disk is full" in str(exc)
    else:
        raise AssertionError("the hook did not fail the batch")
    con = duckdb.connect(str(failed), read_only=True)
    committed, written, attempted = con.execute(
        """SELECT (SELECT value::BIGINT FROM meta WHERE key = 'next_seq'), max(seq) + 1,
                  (SELECT max(seq) + 1 FROM attempts) FROM lines""").fetchall()[0]
    con.close()
    assert written > committed > 0 and attempted > committed  # the failed batch's rows are in, past what committed
    ingest(failed, None)  # resumes at the failed batch
    assert search_json(failed) == search_json(clean)
    tables = {}
    for path in (clean, failed):
        con = duckdb.connect(str(path), read_only=True)
        tables[path] = (con.execute("SELECT msg_id, seq, line FROM lines ORDER BY seq").fetchall(),
                        con.execute("SELECT * FROM attempts ORDER BY seq").fetchall())
        con.close()
    assert tables[failed] == tables[clean] and all(tables[clean])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
def test_the_read_ahead_yields_the_cores_to_the_batch_in_hand() -> None:
    # the next batch is parsed at a lower priority than the consumer's work, whose own
    # priority stays as it was
    from exporter.ingest import _READ_AHEAD_NICE, _read_ahead

    def priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = priority()
    seen = list(_read_ahead(priority() for _ in range(3)))
    assert seen == [min(19, before + _READ_AHEAD_NICE)] * 3
    assert priority() == before


def test_duckdb_gets_the_memory_limit_less_the_batches_in_flight(tmp_path: Path) -> None:
    # DuckDB trims the whole process's heap each time its freed plus used memory pass its
    # limit: the default leaves it ~1 GB (at ~500 MB it did so at almost every batch), and a
    # smaller configured limit still leaves room for the batches in flight
    from exporter.config import ReaderConfig, StoreConfig
    from exporter.ingest import Pipeline
    from exporter.store.db import Store

    def duckdb_share(config: StoreConfig) -> str:
        store = Store(config)
        try:
            Pipeline(store, ReaderConfig(batch_bytes=24 << 20))
            return store.con.execute(
                "SELECT current_setting('memory_limit')").fetchall()[0][0]
        finally:
            store.close()

    assert duckdb_share(StoreConfig(path=tmp_path / "a.duckdb")) == "952.0 MiB"  # 1.25 GB less 10 x 24 MiB
    assert duckdb_share(StoreConfig(path=tmp_path / "b.duckdb", memory_limit="600MB")) == "332.0 MiB"
