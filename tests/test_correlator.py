"""Correlator behaviour a user sees: bounded open state, evictions counted, MIME subjects."""
from __future__ import annotations

from pathlib import Path

import duckdb

from conftest import run_cli, search_json
from exporter.correlator import decode_subject


def _open_message_lines(n: int) -> str:
    lines = []
    for i in range(n):
        qid = f"{0xA00000 + i:08X}"
        lines.append(f"May  1 10:{i // 60:02d}:{i % 60:02d} mx1 postfix/qmgr[1]: {qid}: from=<s{i}@x.example>, "
                     f"size=1, nrcpt=1 (queue active)")
    return "\n".join(lines) + "\n"


def _evicted(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT name, sum(n)::BIGINT FROM line_counts WHERE category = 'evicted' "
                                "GROUP BY 1").fetchall())
    finally:
        con.close()


def test_open_state_is_capped_and_evictions_counted(tmp_path: Path) -> None:
    log = tmp_path / "open.log"
    log.write_text(_open_message_lines(250))
    db = tmp_path / "s.duckdb"
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", "--max-open-messages", "100", str(log))
    assert _evicted(db) == {"capacity": 150}
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM messages WHERE open").fetchall()[0][0] == 100
    con.close()
    assert len(search_json(db)) == 250  # evicted messages are closed, not lost


def test_messages_unseen_too_long_expire(tmp_path: Path) -> None:
    log = tmp_path / "gap.log"
    log.write_text("May  1 10:00:00 mx1 postfix/qmgr[1]: 0A1B2C3D4E: from=<a@x.example>, size=1, nrcpt=1 (queue active)\n"
                   "May  9 10:00:00 mx1 postfix/qmgr[1]: 0B1B2C3D4E: from=<b@x.example>, size=1, nrcpt=1 (queue active)\n"
                   "May  9 10:00:01 mx1 postfix/local[2]: 0A1B2C3D4E: to=<late@example.org>, relay=local, delay=1, "
                   "delays=1/0/0/0, dsn=2.0.0, status=sent (delivered to mailbox)\n")
    db = tmp_path / "s.duckdb"
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", "--expire-after-seconds", "86400", str(log))
    by_qid = {}
    for r in search_json(db):
        by_qid.setdefault(r["queue_id"], []).append(r["status"])
    # the delivery eight days later belongs to a new instance, not the expired one
    assert sorted(by_qid["0A1B2C3D4E"]) == ["pending", "sent"]
    assert _evicted(db)["expired"] == 1


def test_decode_subject() -> None:
    assert decode_subject("=?UTF-8?B?R3LDvMOfZQ==?=") == "Grüße"
    assert decode_subject("=?utf-8?q?a?= ? =?utf-8?q?b?=") == "ab"  # Postfix logs folding as '?'
    assert decode_subject("plain =? text") == "plain =? text"
    assert decode_subject("=?bogus-charset?q?x?=") == "=?bogus-charset?q?x?="
    assert decode_subject(None) is None


def test_a_queue_id_open_twice_takes_the_sql_way_and_keeps_its_lines(tmp_path: Path) -> None:
    """Two open instances of one (host, queue ID) (lines pushed out of order by several
    senders can leave that state) send the batch through the SQL instance assignment; its
    lines are still stored, raw lines included."""
    db = tmp_path / "s.duckdb"
    first = tmp_path / "a.log"
    first.write_text("May  1 10:00:00 mx1 postfix/qmgr[1]: 4F1A2B3C4D: from=<a@x.example>, size=1, nrcpt=1 "
                     "(queue active)\n")
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", str(first))
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO messages SELECT * REPLACE (msg_id + 1000 AS msg_id) FROM messages")  # a second open one
    con.close()
    second = tmp_path / "b.log"
    second.write_text("May  1 10:00:05 mx1 postfix/smtp[2]: 4F1A2B3C4D: to=<r@y.example>, relay=mx.y.example"
                      "[192.0.2.1]:25, delay=5, delays=0/0/1/4, dsn=2.0.0, status=sent (250 ok)\n"
                      "May  1 10:00:06 mx1 postfix/qmgr[1]: 4F1A2B3C4D: removed\n")
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", str(second))
    [rec] = [r for r in search_json(db) if r["status"] == "sent"]
    assert rec["recipient"] == "r@y.example"
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM lines WHERE line LIKE '%status=sent%'").fetchall()[0][0] == 1
    con.close()
