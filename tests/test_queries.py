"""Search, trace and stats as a user runs them, over a real DuckDB store of the golden logs."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from conftest import DATA, run_cli, search_json
from datasource_api.queries import SearchFilter, parse_time

LOGS = sorted((DATA / "golden").glob("*.log"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("q") / "golden.duckdb"
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", *map(str, LOGS))
    return db


def test_search_by_recipient_domain_and_status(store: Path) -> None:
    assert {r["queue_id"] for r in search_json(store, "--recipient", "BOB@example.org")} == {"4A1B2C3D4E"}
    deferred = search_json(store, "--status", "deferred")
    assert [r["recipient"] for r in deferred] == ["gina@down.example"]
    both = search_json(store, "--status", "deferred", "--status", "expired")
    assert {r["status"] for r in both} == {"deferred", "expired"}
    assert {r["recipient"] for r in search_json(store, "--domain", "partner.example")} == {
        "dave@partner.example", "ops@partner.example"}


def test_orig_recipient_finds_aliased_delivery(store: Path) -> None:
    [rec] = search_json(store, "--recipient", "sales@example.org")
    assert rec["recipient"] == "carol@example.org" and rec["orig_recipient"] == "sales@example.org"


def test_subject_is_case_insensitive_substring_and_like_is_escaped(store: Path) -> None:
    assert [r["subject"] for r in search_json(store, "--subject", "GRÜSSE")] == []  # ß is not ss
    assert len(search_json(store, "--subject", "grüße")) == 2
    assert search_json(store, "--subject", "%") == []           # a literal percent sign, not "anything"
    assert search_json(store, "--subject", "_unch") == []       # a literal underscore
    assert len(search_json(store, "--subject", "<script>")) == 1


def test_dsn_prefix_and_exact(store: Path) -> None:
    assert {r["dsn"] for r in search_json(store, "--dsn", "5.1")} == {"5.1.1"}
    assert {r["dsn"] for r in search_json(store, "--dsn", "4")} == {"4.4.1", "4.7.25"}
    proc = run_cli("search", "--db", str(store), "--dsn", "x'; DROP TABLE messages; --", check=False)
    assert proc.returncode == 2 and "dsn" in proc.stderr.decode()


def test_injection_is_just_text(store: Path) -> None:
    assert search_json(store, "--sender", "x' OR '1'='1") == []
    assert search_json(store, "--queue-id", "' OR 1=1 --") == []
    assert len(search_json(store)) > 20  # the store is intact


def test_time_range_queue_and_message_id_client(store: Path) -> None:
    march3 = search_json(store, "--since", "2026-03-03T00:00:00Z", "--until", "2026-03-04T00:00:00Z")
    assert {r["queue_id"] for r in march3} == {"4A1B2C3D4E", "5B2C3D4E5F", "6C3D4E5F60"}
    assert len(search_json(store, "--since", "1772496000000", "--until", "1772582400000")) == len(march3)  # epoch ms
    reuse = search_json(store, "--queue-id", "D3E4F5A6B7")
    assert sorted(r["message_id"] for r in reuse) == ["first@a.example", "second@b.example", "third@c.example"]
    assert [r["queue_id"] for r in search_json(store, "--message-id", "<order-77@shop.example>")] == ["7D4E5F6071"]
    assert {r["status"] for r in search_json(store, "--client-ip", "203.0.113.200")} == {"rejected"}
    assert len(search_json(store, "--limit", "2")) == 2


def test_newest_first(store: Path) -> None:
    times = [r["time"] for r in search_json(store)]
    assert times == sorted(times, reverse=True)


def test_bad_parameters_are_one_line_errors(store: Path) -> None:
    proc = run_cli("search", "--db", str(store), "--since", "yesterday-ish", check=False)
    assert proc.returncode == 2 and "since" in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()
    proc = run_cli("search", "--db", str(store.parent / "missing.duckdb"), check=False)
    assert proc.returncode == 1 and "no such store" in proc.stderr.decode()


def test_trace_follows_bounce_notice_and_shows_raw_lines(store: Path) -> None:
    out = run_cli("trace", "--db", str(store), "7D4E5F6071").stdout.decode()
    assert "7D4E5F6071 -> 8E5F607182  (sender non-delivery)" in out
    assert "postfix/bounce[5004]: 7D4E5F6071: sender non-delivery notification: 8E5F607182" in out
    assert "8E5F607182: to=<orders@shop.example>" in out  # the notice's own delivery
    data = json.loads(run_cli("trace", "--db", str(store), "C2D3E4F5A6", "--format", "json").stdout)
    [inst] = data
    assert {(i["queue_id"], i["role"]) for i in inst["instances"]} == {("B1C2D3E4F5", "parent"),
                                                                       ("C2D3E4F5A6", "this")}
    assert inst["links"][0]["kind"] == "content filter"
    assert inst["links"][0]["parent_queue_id"] == "B1C2D3E4F5"
    times = [datetime.fromisoformat(line["time"]) for line in inst["lines"]]
    assert times == sorted(times) and {line["queue_id"] for line in inst["lines"]} == {"B1C2D3E4F5", "C2D3E4F5A6"}


def test_trace_of_reused_queue_id_lists_each_instance(store: Path) -> None:
    data = json.loads(run_cli("trace", "--db", str(store), "D3E4F5A6B7", "--format", "json").stdout)
    assert len(data) == 3
    assert run_cli("trace", "--db", str(store), "NOSUCHID", check=False).returncode == 1


def test_trace_escapes_terminal_control_characters(tmp_path: Path) -> None:
    log = tmp_path / "esc.log"
    log.write_text(encoding="utf-8", data="Apr  1 10:00:00 mx1 postfix/cleanup[1]: 0B1C2D3E4F: info: header Subject: \u009b31mred\u202e "
                   "from x.example[192.0.2.1]; from=<a@x.example> to=<b@y.example> proto=ESMTP helo=<x>\n"
                   "Apr  1 10:00:00 mx1 postfix/qmgr[2]: 0B1C2D3E4F: from=<a@x.example>, size=1, nrcpt=1 (queue active)\n")
    db = tmp_path / "s.duckdb"
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", str(log))
    out = run_cli("trace", "--db", str(db), "0B1C2D3E4F").stdout.decode()
    # C1 CSI (a terminal escape) and a bidi override are shown escaped, never raw
    assert "\u009b" not in out and "\u202e" not in out and "\\x9b31mred\\x202e" in out


def test_stats_counts_and_rates(store: Path) -> None:
    stats = json.loads(run_cli("stats", "--db", str(store), "--format", "json").stdout)
    records = search_json(store)
    assert stats["records"] == len(records)
    for status, n in stats["by_status"].items():
        assert n == sum(1 for r in records if r["status"] == status)
    final = sum(stats["by_status"].get(s, 0) for s in ("sent", "bounced", "deferred", "expired"))
    assert stats["bounced_rate"] == pytest.approx(stats["by_status"]["bounced"] / final)
    assert stats["top_domains"][0]["domain"] == "example.org"
    assert {"category": "anomaly", "name": "time_backwards", "lines": 4} in stats["line_counts"]
    table = run_cli("stats", "--db", str(store)).stdout.decode()
    assert "top recipient domains" in table and "DSN breakdown" in table


def test_parse_time_forms() -> None:
    assert parse_time("2026-03-03T10:00:00+01:00").isoformat() == "2026-03-03T09:00:00"
    assert parse_time("1772532000000").isoformat() == "2026-03-03T10:00:00"
    with pytest.raises(ValueError):
        parse_time("tomorrow")
    with pytest.raises(ValueError):
        SearchFilter(dsn="9.9.9")


def test_export_parquet_partitioned_by_day(store: Path, tmp_path: Path) -> None:
    run_cli("export", "--db", str(store), str(tmp_path / "pq"))
    days = sorted(p.name for p in (tmp_path / "pq" / "delivery_records").iterdir())
    assert "day=2026-03-03" in days
    con = duckdb.connect()
    n = con.execute(f"SELECT count(*) FROM read_parquet('{tmp_path}/pq/delivery_records/*/*.parquet')").fetchall()[0][0]
    src = duckdb.connect(str(store), read_only=True)
    assert n == src.execute("SELECT count(*) FROM delivery_records").fetchall()[0][0]
    src.close()


def test_prune_drops_old_closed_messages(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", str(DATA / "golden" / "reuse.log"))
    before = search_json(db)
    run_cli("prune", "--db", str(db), "--older-than-days", "100000")
    assert search_json(db) == before
    run_cli("prune", "--db", str(db), "--older-than-days", "1")
    after = search_json(db)
    assert [r["status"] for r in after] == ["pending"]  # the still-open instance stays
