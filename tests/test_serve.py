"""The live service as an operator runs it: following logs, intake, metrics, restarts."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from conftest import DATA, run_cli, search_json
from exporter import generator
from service import Service, free_port, http_get, metric_sum
from test_sources_intake import push_request

GOLDEN = DATA / "golden"
LOGGER = shutil.which("logger")


def _post(url: str, body: bytes, ctype: str, encoding: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": ctype})
    if encoding:
        req.add_header("Content-Encoding", encoding)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _records(db: Path) -> list[dict]:
    return sorted(search_json(db), key=lambda r: json.dumps(r, sort_keys=True))


def _reference(tmp: Path, content: bytes) -> list[dict]:
    """What a one-shot `ingest` of the same lines gives."""
    log, db = tmp / "reference.log", tmp / "reference.duckdb"
    log.write_bytes(content)
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", str(log))
    return _records(db)


def _counters(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("postfix_insights_") and "_total" in line.split("{")[0]}


def test_follows_appends_and_serves_metrics(tmp_path: Path) -> None:
    logdir = tmp_path / "log"
    logdir.mkdir()
    content = (GOLDEN / "delivery.log").read_bytes() + (GOLDEN / "bounces.log").read_bytes()
    half = content.index(b"\n", len(content) // 2) + 1
    partial = half + 14
    (logdir / "mail.log").write_bytes(content[:partial])  # the last line is still being written
    svc = Service(tmp_path, tmp_path / "s.duckdb", ["--log", str(logdir / "mail.log*")])
    try:
        svc.wait_idle(content[:half].count(b"\n"))
        with open(logdir / "mail.log", "ab") as f:  # the writer finishes that line and goes on
            f.write(content[partial:])
        svc.wait_idle(content.count(b"\n"))
        text = svc.metrics_text()
        health = svc.health()
    finally:
        assert svc.stop() == 0  # SIGTERM: finish, commit, exit 0
    assert health["status"] == "ok" and health["sources"]["lag_bytes"][str(logdir / "mail.log")] == 0
    assert _records(tmp_path / "s.duckdb") == _reference(tmp_path, content)
    assert metric_sum(text, "postfix_insights_deliveries_total", status="sent") == 6
    assert metric_sum(text, "postfix_insights_deliveries_total", status="bounced") == 1
    assert metric_sum(text, "postfix_insights_bounces_total", reason="expired") == 1
    assert metric_sum(text, "postfix_insights_unparsed_lines_total") == 0
    # a delay per message removed after a final (sent or bounced) attempt, counted once
    con = duckdb.connect(str(tmp_path / "reference.duckdb"), read_only=True)
    (final,) = con.execute("""SELECT count(DISTINCT a.msg_id) FROM attempts a JOIN messages m USING (msg_id)
                              WHERE m.removed AND a.status IN ('sent', 'bounced')""").fetchall()[0]
    con.close()
    assert final >= 5
    assert metric_sum(text, "postfix_insights_delivery_delay_seconds_count", stage="total") == final
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert f"# HELP {name} " in text


@pytest.mark.skipif(shutil.which("promtool") is None and not os.environ.get("CI"), reason="promtool not installed")
def test_promtool_accepts_metrics_output(tmp_path: Path) -> None:
    (tmp_path / "mail.log").write_bytes((GOLDEN / "retries.log").read_bytes())
    svc = Service(tmp_path, tmp_path / "s.duckdb", ["--log", str(tmp_path / "mail.log")])
    try:
        svc.wait_idle(17)
        text = svc.metrics_text()
        _, openmetrics = 0, urllib.request.urlopen(urllib.request.Request(
            svc.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})).read()
    finally:
        svc.stop()
    proc = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert openmetrics.rstrip().endswith(b"# EOF")


@pytest.mark.parametrize("style", ["rename_create", "copytruncate", "delete_recreate", "compress_rotated"])
def test_rotation_while_a_writer_appends(tmp_path: Path, style: str) -> None:
    corpus = tmp_path / "corpus.log"
    generator.generate(corpus, 6000, seed=5)
    lines = corpus.read_bytes().splitlines(keepends=True)
    logdir = tmp_path / "log"
    logdir.mkdir()
    live = logdir / "mail.log"
    live.write_bytes(b"")
    svc = Service(tmp_path, tmp_path / "s.duckdb", ["--log", str(logdir / "mail.log*")])
    written = 0
    try:
        for part in range(3):
            chunk = lines[part * 2000:(part + 1) * 2000]
            with open(live, "ab") as f:
                for i in range(0, len(chunk), 100):  # the writer keeps appending while we read
                    f.write(b"".join(chunk[i:i + 100]))
                    f.flush()
                    time.sleep(0.01)
            written += len(chunk)
            if part == 2:
                break
            svc.wait_idle(written)
            rotated = logdir / f"mail.log.{part + 1}"
            if style == "rename_create":
                live.rename(rotated)
                live.write_bytes(b"")
            elif style == "copytruncate":
                shutil.copyfile(live, rotated)
                with open(live, "r+b") as f:
                    f.truncate(0)
            elif style == "delete_recreate":
                live.unlink()
                live.write_bytes(b"")
            else:
                with open(live, "rb") as src, gzip.open(str(rotated) + ".gz", "wb") as dst:
                    shutil.copyfileobj(src, dst)
                live.unlink()
                live.write_bytes(b"")
        svc.wait_idle(written)
    finally:
        assert svc.stop() == 0
    assert _records(tmp_path / "s.duckdb") == _reference(tmp_path, b"".join(lines[:written]))


def test_kill_9_then_restart_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    corpus = tmp_path / "mail.log"
    stats = generator.generate(corpus, 60_000, seed=9, hosts=("mx1", "mx2"))
    total = stats.lines
    db = tmp_path / "s.duckdb"
    config = "[reader]\nbatch_bytes = 262144\n"
    for delay in (0.8, 1.6, 2.4):
        svc = Service(tmp_path, db, ["--log", str(corpus)], config=config)
        time.sleep(delay)
        svc.stop(signal.SIGKILL)
    svc = Service(tmp_path, db, ["--log", str(corpus)], config=config)
    try:
        svc.wait_idle(total, timeout=300)
        after_crashes = _counters(svc.metrics_text())
    finally:
        svc.stop()
    clean_db = tmp_path / "clean.duckdb"
    clean = Service(tmp_path, clean_db, ["--log", str(corpus)], config=config)
    try:
        clean.wait_idle(total, timeout=300)
        clean_counters = _counters(clean.metrics_text())
    finally:
        clean.stop()
    assert _records(db) == _records(clean_db)
    assert after_crashes == clean_counters


def test_counters_continue_across_restart(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_bytes((GOLDEN / "rejects.log").read_bytes())
    db = tmp_path / "s.duckdb"
    svc = Service(tmp_path, db, ["--log", str(log)])
    svc.wait_idle(log.read_bytes().count(b"\n"))
    before = _counters(svc.metrics_text())
    svc.stop()
    svc = Service(tmp_path, db, ["--log", str(log)])
    try:
        time.sleep(1)
        after = _counters(svc.metrics_text())
    finally:
        svc.stop()
    assert before == after and before['postfix_insights_rejects_total{code="554",reason="policy"}'] == 1


def _syslog_service(tmp_path: Path) -> tuple[Service, int, int]:
    udp, tcp = _free_udp_port(), free_port()
    svc = Service(tmp_path, tmp_path / "s.duckdb", ["--syslog-udp", f"127.0.0.1:{udp}", "--syslog-tcp", f"127.0.0.1:{tcp}"])
    return svc, udp, tcp


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SYSLOG_MSGS = [
    ("postfix/qmgr", "1A2B3C4D5E: from=<a@x.example>, size=1, nrcpt=1 (queue active)"),
    ("postfix/local", "1A2B3C4D5E: to=<b@example.org>, relay=local, delay=1, delays=1/0/0/0, dsn=2.0.0, "
                      "status=sent (delivered to mailbox)"),
    ("postfix/qmgr", "1A2B3C4D5E: removed"),
]


@pytest.mark.skipif(LOGGER is None and not os.environ.get("CI"), reason="util-linux logger not installed")
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_syslog_with_logger(tmp_path: Path, transport: str) -> None:
    svc, udp, tcp = _syslog_service(tmp_path)
    try:
        for tag, msg in SYSLOG_MSGS:
            subprocess.run([LOGGER or "logger", f"--{transport}", "--server", "127.0.0.1", "--port",
                            str(udp if transport == "udp" else tcp), "--rfc5424" if transport == "tcp" else "--rfc3164",
                            "-t", tag, msg], check=True)
            time.sleep(0.05)  # keep the order of UDP datagrams
        svc.wait_idle(3)
    finally:
        svc.stop()
    [rec] = search_json(tmp_path / "s.duckdb")
    assert (rec["queue_id"], rec["recipient"], rec["status"]) == ("1A2B3C4D5E", "b@example.org", "sent")


def test_syslog_python_clients_udp_and_octet_counted_tcp(tmp_path: Path) -> None:
    svc, udp, tcp = _syslog_service(tmp_path)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            tag, msg = SYSLOG_MSGS[0]
            s.sendto(f"<22>Mar  3 10:00:00 mx7 {tag}[1]: {msg}".encode(), ("127.0.0.1", udp))
        svc.wait_idle(1)
        with socket.create_connection(("127.0.0.1", tcp)) as s:
            for tag, msg in SYSLOG_MSGS[1:]:
                frame = f"<22>1 2026-03-03T10:00:01Z mx7 {tag} 2 - - {msg}".encode()
                s.sendall(str(len(frame)).encode() + b" " + frame)
        svc.wait_idle(3)
    finally:
        svc.stop()
    [rec] = search_json(tmp_path / "s.duckdb")
    assert (rec["host"], rec["status"], rec["time"]) == ("mx7", "sent", "2026-03-03T10:00:01Z")


def test_loki_push_protobuf_snappy_and_json(tmp_path: Path) -> None:
    svc = Service(tmp_path, tmp_path / "s.duckdb", [])
    push = svc.url + "/loki/api/v1/push"
    lines = (GOLDEN / "retries.log").read_text().splitlines()
    try:
        body = push_request([('{host="mx1", job="postfix"}', [(1772532000 + i, 0, line) for i, line in enumerate(lines[:9])])])
        assert _post(push, body, "application/x-protobuf")[0] == 204
        doc = {"streams": [{"stream": {"host": "mx1"}, "values": [[str(1772532100 + i), line] for i, line in enumerate(lines[9:])]}]}
        assert _post(push, gzip.compress(json.dumps(doc).encode()), "application/json", "gzip")[0] == 204
        status, err = _post(push, b"garbage", "application/x-protobuf")
        assert status == 400 and "snappy" in json.loads(err)["error"]["message"]
        status, err = _post(push, b'{"streams": {}}', "application/json")
        assert status == 400 and "streams" in json.loads(err)["error"]["message"]
        assert http_get(svc.url + "/nope")[0] == 404
        text = svc.metrics_text()
    finally:
        svc.stop()
    assert metric_sum(text, "postfix_insights_lines_read_total", source="loki") == len(lines)
    assert _records(tmp_path / "s.duckdb") == _reference(tmp_path, (GOLDEN / "retries.log").read_bytes())


def test_loki_push_answers_429_when_the_queue_is_full(tmp_path: Path) -> None:
    config = "[intake]\nmax_queued_lines = 1000\n"
    svc = Service(tmp_path, tmp_path / "s.duckdb", [], config=config)
    try:
        entries = [(1772532000, i, f"Mar  3 10:00:00 mx1 postfix/anvil[1]: statistics: {i}") for i in range(1500)]
        status, body = _post(svc.url + "/loki/api/v1/push", push_request([('{host="mx1"}', entries)]),
                             "application/x-protobuf")
    finally:
        svc.stop()
    assert status == 429 and "retry" in json.loads(body)["error"]["message"]


def test_bad_settings_name_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[http]\nlisten = 'everywhere'\n[correlator]\nmax_open_messages = 3\n")
    proc = run_cli("serve", "--db", str(tmp_path / "s.duckdb"), "--config", str(cfg), check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "http.listen" in err and "correlator.max_open_messages" in err


def test_cli_reads_through_the_running_service(tmp_path: Path) -> None:
    """While serve holds the store, search/trace/stats ask it over HTTP, with the same answers."""
    log = tmp_path / "mail.log"
    log.write_bytes((GOLDEN / "bounces.log").read_bytes())
    db = tmp_path / "s.duckdb"
    svc = Service(tmp_path, db, ["--log", str(log)])
    try:
        svc.wait_idle(log.read_bytes().count(b"\n"))
        live = _records(db)
        live_trace = run_cli("trace", "--db", str(db), "7D4E5F6071").stdout.decode()
        live_stats = json.loads(run_cli("stats", "--db", str(db), "--format", "json").stdout)
        status, body = http_get(svc.url + "/api/v1/messages?limit=abc")
        bad = json.loads(body)
        status_dsn, _ = http_get(svc.url + "/api/v1/messages?dsn=x%27%3B")
    finally:
        assert svc.stop() == 0
    assert not Path(str(db) + ".serve.json").exists()
    assert live == _records(db) and len(live) == 4
    assert "sender non-delivery notification: 8E5F607182" in live_trace
    assert live_stats["by_status"] == json.loads(run_cli("stats", "--db", str(db), "--format", "json").stdout)["by_status"]
    assert status == 400 and bad["error"]["parameter"] == "limit"
    assert status_dsn == 400


JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"


def _write_journal(path: Path, lines: list[str], first_ts_us: int) -> None:
    """A journal file, written by systemd's own journal-remote from the journal export format."""
    export = b""
    for i, line in enumerate(lines):
        header, _, message = line.partition(": ")
        tag = header.split()[-1]
        ident, _, pid = tag.partition("[")
        export += (f"__REALTIME_TIMESTAMP={first_ts_us + i}\n__MONOTONIC_TIMESTAMP={i + 1}\n"
                   f"_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=mx5\nSYSLOG_IDENTIFIER={ident}\n"
                   f"_PID={pid.rstrip(']') or 1}\nMESSAGE={message}\n\n").encode()
    src = path.with_suffix(".export")
    src.write_bytes(export)
    subprocess.run([JOURNAL_REMOTE, "-o", str(path), str(src)], check=True, capture_output=True)


@pytest.mark.skipif(not (Path(JOURNAL_REMOTE).exists() and shutil.which("journalctl")) and not os.environ.get("CI"),
                    reason="journalctl / systemd-journal-remote not installed")
def test_journald_follow_and_resume_after_the_cursor(tmp_path: Path) -> None:
    lines = (GOLDEN / "delivery.log").read_text().splitlines()
    jdir = tmp_path / "journal"
    jdir.mkdir()
    _write_journal(jdir / "a.journal", lines[:10], 1772532000_000000)
    config = f"[journald]\nenabled = true\nunit = \"\"\ndirectory = \"{jdir}\"\n"
    db = tmp_path / "s.duckdb"
    svc = Service(tmp_path, db, [], config=config)
    try:
        svc.wait_idle(10)
    finally:
        assert svc.stop() == 0
    _write_journal(jdir / "b.journal", lines[10:], 1772532100_000000)
    svc = Service(tmp_path, db, [], config=config)  # resumes after the stored cursor
    try:
        svc.wait_idle(len(lines))
        time.sleep(1)
        read = metric_sum(svc.metrics_text(), "postfix_insights_lines_read_total", source="journald")
    finally:
        assert svc.stop() == 0
    assert read == len(lines)  # nothing read twice
    records = search_json(db)
    assert {r["recipient"] for r in records} == {"bob@example.org", "carol@example.org", "dave@partner.example",
                                                "ops@partner.example"}
    assert {r["host"] for r in records} == {"mx5"}


def test_a_file_that_appears_later_is_followed(tmp_path: Path) -> None:
    logdir = tmp_path / "log"
    logdir.mkdir()
    svc = Service(tmp_path, tmp_path / "s.duckdb", ["--log", str(logdir / "*.log")])
    try:
        time.sleep(1)
        content = (GOLDEN / "reuse.log").read_bytes()
        (logdir / "mail.log").write_bytes(content)
        svc.wait_idle(content.count(b"\n"))
    finally:
        assert svc.stop() == 0
    assert _records(tmp_path / "s.duckdb") == _reference(tmp_path, content)


def test_retention_days_drops_old_data_while_serving(tmp_path: Path) -> None:
    """[store] retention_days: serve drops closed messages older than that (at start, then
    hourly); a message still open stays whatever its age."""
    db = tmp_path / "s.duckdb"
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", str(GOLDEN / "reuse.log"))
    assert len(search_json(db)) > 1  # March 2026: months older than a day
    svc = Service(tmp_path, db, [], config="[store]\nretention_days = 1\n")
    try:
        deadline = time.monotonic() + 30
        while (statuses := [r["status"] for r in search_json(db)]) != ["pending"] and time.monotonic() < deadline:
            time.sleep(0.2)  # read through the service, which holds the store
    finally:
        assert svc.stop() == 0
    assert statuses == ["pending"]
    assert [r["status"] for r in search_json(db)] == ["pending"]
