"""End to end against a real Postfix: real maillog in, `postfix-insights search` records out.

tests/postfix_harness.py starts a private loopback-only Postfix 3.7 with sink SMTP servers,
sends a fixed set of messages and returns the maillog plus what the sinks saw (the ground
truth). This test ingests that maillog with the CLI and checks every delivery record.

Needs root and Debian's postfix (`.ci/install-postfix.sh`). Locally it is skipped without
them; under CI (env CI set) it fails instead, so CI can never pass by skipping it.
Set POSTFIX_E2E_UPDATE_GOLDEN=1 to also rewrite tests/data/postfix-e2e-maillog.log from the run.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from exporter.records import DELIVERY_RECORD_KEYS, Status

sys.path.insert(0, str(Path(__file__).resolve().parent))
import postfix_harness as ph  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "data" / "postfix-e2e-maillog.log"

Q = r"[0-9A-F]{6,}"  # short queue ID (long IDs are off by default)
LINE = re.compile(r"^[A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} mx postfix(?:/[\w-]+)+\[\d+\]: \S")

# One regex per scenario; each must match at least one line of a produced maillog.
SCENARIO_LINES = {
    "start": r"postfix/postfix-script\[\d+\]: starting the Postfix mail system$",
    "master": r"postfix/master\[\d+\]: daemon started -- version 3\.\d+\.\d+, configuration /",
    "stop": r"postfix/postfix-script\[\d+\]: stopping the Postfix mail system$",
    "NOQUEUE relay reject": r"postfix/smtpd\[\d+\]: NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.3\]: "
                            r"554 5\.7\.1 <victim@denied\.test>: Relay access denied; from=<mallory@senders\.test> "
                            r"to=<victim@denied\.test> proto=ESMTP helo=<client\.test>$",
    "reject with a queue ID": rf"postfix/smtpd\[\d+\]: {Q}: reject: RCPT from unknown\[127\.0\.0\.3\]: "
                              r"554 5\.7\.1 <victim2@denied\.test>: Relay access denied;",
    "bounce 5.1.1": rf"postfix/smtp\[\d+\]: {Q}: to=<nobody@reject\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, "
                    r".*dsn=5\.1\.1, status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 550 5\.1\.1 User unknown "
                    r"\(in reply to RCPT TO command\)\)$",
    "bounce notice": rf"postfix/bounce\[\d+\]: {Q}: sender non-delivery notification: {Q}$",
    "delay notice": rf"postfix/bounce\[\d+\]: {Q}: sender delay notification: {Q}$",
    "notice queued with null sender": rf"postfix/qmgr\[\d+\]: {Q}: from=<>, size=\d+, nrcpt=1 \(queue active\)$",
    "notice sent to the sender": rf"postfix/smtp\[\d+\]: {Q}: to=<alice@senders\.test>, .*status=sent",
    "greylist deferral": r"to=<grey1@grey\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*dsn=4\.2\.0, "
                         r"status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 450 4\.2\.0 ",
    "greylist then sent": r"to=<grey1@grey\.test>, .*dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok: queued as SINKC",
    "connection refused": r"postfix/smtp\[\d+\]: connect to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: Connection refused$",
    "refused deferral": r"to=<lost@down\.test>, relay=none, .*dsn=4\.4\.1, status=deferred "
                        r"\(connect to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: Connection refused\)$",
    "expiry": rf"postfix/qmgr\[\d+\]: {Q}: from=<dave@senders\.test>, status=expired, returned to sender$",
    "removed": rf"postfix/qmgr\[\d+\]: {Q}: removed$",
    "encoded subject": r"cleanup\[\d+\]: [0-9A-F]+: info: header Subject: =\?utf-8\?B\?[A-Za-z0-9+/=]+\?= "
                       r"from unknown\[127\.0\.0\.3\]; from=<bob@senders\.test>",
    "folded subject": r"info: header Subject: (?:=\?utf-8\?b\?\S+\?=\? )+=\?utf-8\?b\?\S+\?= from unknown",
    "hostile subject": r"info: header Subject: status=bounced <script>alert\(1\)</script> queued as ABC123",
    "missing message-id": rf"postfix/cleanup\[\d+\]: {Q}: message-id=<>$",
    "generated message-id": rf"postfix/cleanup\[\d+\]: ({Q}): message-id=<\d{{14}}\.\1@mx\.test\.example>$",
    "client line": rf"postfix/smtpd\[\d+\]: {Q}: client=unknown\[127\.0\.0\.3\]$",
}


def _check_scenarios(text: str) -> None:
    lines = text.splitlines()
    bad = [ln for ln in lines if not LINE.match(ln)]
    assert not bad, f"lines not in maillog_file format: {bad[:5]}"
    missing = [name for name, rx in SCENARIO_LINES.items() if not re.search(rx, text, re.M)]
    assert not missing, f"scenarios missing from the maillog: {missing}"


# --------------------------------------------------------------------------- the run

@pytest.fixture(scope="module")
def run(tmp_path_factory) -> ph.RunResult:
    reason = ph.postfix_missing_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the real-Postfix end-to-end test cannot run in CI: {reason}. "
                        f"`make test` runs .ci/install-postfix.sh as root; check its output.", pytrace=False)
        pytest.skip(reason)
    result = ph.run_all(tmp_path_factory.mktemp("postfix") / "maillog")
    if os.environ.get("POSTFIX_E2E_UPDATE_GOLDEN"):
        shutil.copyfile(result.maillog, GOLDEN)
    return result


def _cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("postfix-insights")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "exporter.cli"]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"postfix-insights {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def records(run: ph.RunResult, tmp_path_factory) -> list[dict]:
    db = tmp_path_factory.mktemp("postfix-db") / "store.duckdb"
    # Postfix ran with TZ=UTC, so the year-less timestamps are UTC; the first line is in the start's year.
    _cli("ingest", "--db", str(db), "--year", str(run.started_utc.year), "--timezone", "UTC", str(run.maillog))
    out = _cli("search", "--db", str(db), "--format", "json", "--limit", "1000").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# --------------------------------------------------------------------------- the maillog itself

@pytest.mark.postfix
def test_maillog_has_every_scenario(run: ph.RunResult) -> None:
    _check_scenarios(run.maillog_text())
    assert run.timings["stopped"] < 150, run.timings


def test_golden_maillog_has_every_scenario() -> None:
    """The committed copy of one run (parser tests' input) still shows every scenario."""
    _check_scenarios(GOLDEN.read_text(encoding="utf-8"))


@pytest.mark.postfix
def test_sinks_saw_what_postfix_logged(run: ph.RunResult) -> None:
    got = Counter((d.sink, d.mail_from, d.rcpt) for d in run.deliveries)
    for m in run.messages.values():
        for rcpt in m.accepted:
            domain = rcpt.split("@")[1]
            if domain == ph.ACCEPT:
                assert got[("a", m.sender, rcpt)] == 1, (m.key, rcpt)
            elif domain == ph.GREY:
                assert got[("c", m.sender, rcpt)] == 1, (m.key, rcpt)
                assert run.sink_rcpt_attempts["c"][rcpt] == 2, (m.key, rcpt)
            elif domain == ph.REJECT:
                assert run.sink_rcpt_attempts["b"][rcpt] == 1
    assert not [d for d in run.deliveries if d.sink == "b"]
    assert not [d for d in run.deliveries if d.rcpt.endswith("@" + ph.DOWN)]
    assert run.messages["denied"].queue_id is None and not run.messages["denied"].accepted
    assert list(run.messages["mixed"].refused) == [f"victim2@{ph.DENIED}"]
    notices = [d for d in run.deliveries if d.mail_from == ""]
    assert sorted(d.rcpt for d in notices if d.subject == "Undelivered Mail Returned to Sender") == \
        [f"alice@{ph.SENDERS}", f"dave@{ph.SENDERS}"]
    # down.test stays queued past delay_warning_time; on a very slow machine a greylisted
    # message could too, so only require dave's delay notice.
    assert f"dave@{ph.SENDERS}" in [d.rcpt for d in notices if d.subject.startswith("Delayed Mail")]
    for d in run.deliveries:
        if d.mail_from:
            sent = next(m for m in run.messages.values() if m.sender == d.mail_from)
            assert d.subject == sent.subject and d.message_id == sent.message_id


# --------------------------------------------------------------------------- the CLI's records

def _attempt_lines(text: str, qid: str, rcpt: str) -> int:
    return len(re.findall(rf": {qid}: to=<{re.escape(rcpt)}>, ", text))


@pytest.mark.postfix
def test_search_records_match_the_real_run(run: ph.RunResult, records: list[dict]) -> None:
    text = run.maillog_text()
    for rec in records:
        assert tuple(rec) == DELIVERY_RECORD_KEYS, rec
        assert rec["host"] == "mx"
        assert rec["tls"] is None and rec["orig_recipient"] is None
        t = datetime.fromisoformat(rec["time"].replace("Z", "+00:00"))
        assert run.started_utc.replace(microsecond=0) <= t <= run.finished_utc + timedelta(seconds=1), rec

    by_key: dict[tuple, dict] = {}
    for rec in records:
        key = (rec["queue_id"], rec["recipient"])
        assert key not in by_key, f"duplicate record for {key}"
        by_key[key] = rec
    sink_by = {(d.mail_from, d.rcpt): d for d in run.deliveries}
    port = run.sink_ports
    expected_keys = set()

    for m in run.messages.values():
        for rcpt in m.accepted:
            key = (m.queue_id, rcpt)
            expected_keys.add(key)
            rec = by_key.get(key)
            assert rec is not None, f"no record for {m.key} {rcpt} ({m.queue_id}); got {sorted(by_key)}"
            ctx = (m.key, rcpt, rec)
            assert rec["sender"] == m.sender, ctx
            assert rec["subject"] == m.subject, ctx
            assert rec["client_ip"] == ph.CLIENT_ADDR, ctx
            assert isinstance(rec["delay_seconds"], (int, float)) and rec["delay_seconds"] >= 0, ctx
            sink = sink_by.get((m.sender, rcpt))
            if sink is not None:  # what the next hop received is what the log says
                assert rec["message_id"] == (sink.message_id or ""), ctx
            else:
                assert rec["message_id"] == m.message_id, ctx
            attempts = _attempt_lines(text, m.queue_id, rcpt)
            assert rec["attempts"] == attempts, ctx
            domain = rcpt.split("@")[1]
            if domain == ph.ACCEPT:
                assert (rec["status"], rec["dsn"], rec["attempts"]) == (Status.SENT, "2.0.0", 1), ctx
                assert rec["relay"] == f"127.0.0.1[127.0.0.1]:{port['a']}", ctx
                assert rec["response"].startswith("250 2.0.0 Ok: queued as SINKA"), ctx
            elif domain == ph.GREY:
                assert (rec["status"], rec["dsn"]) == (Status.SENT, "2.0.0"), ctx
                assert rec["attempts"] >= 2 and rec["attempts"] == run.sink_rcpt_attempts["c"][rcpt], ctx
                assert rec["relay"] == f"127.0.0.1[127.0.0.1]:{port['c']}", ctx
                assert rec["response"].startswith("250 2.0.0 Ok: queued as SINKC"), ctx
            elif domain == ph.REJECT:
                assert (rec["status"], rec["dsn"], rec["attempts"]) == (Status.BOUNCED, "5.1.1", 1), ctx
                assert rec["relay"] == f"127.0.0.1[127.0.0.1]:{port['b']}", ctx
                assert "550 5.1.1 User unknown" in rec["response"], ctx
            elif domain == ph.DOWN:
                # We wait for the expiry, so the final state is expired (not deferred).
                assert (rec["status"], rec["dsn"]) == (Status.EXPIRED, "4.4.1"), ctx
                assert rec["attempts"] >= 2, ctx
                assert rec["relay"] == "none", ctx
                assert rec["response"] == f"connect to 127.0.0.1[127.0.0.1]:{port['d']}: Connection refused", ctx
            else:
                raise AssertionError(ctx)

    # Relay denied before any recipient was accepted: no queue ID at all.
    rec = by_key.get((None, f"victim@{ph.DENIED}"))
    expected_keys.add((None, f"victim@{ph.DENIED}"))
    assert rec is not None, sorted(by_key)
    assert (rec["status"], rec["dsn"], rec["attempts"]) == (Status.REJECTED, "5.7.1", 0), rec
    assert rec["sender"] == f"mallory@{ph.SENDERS}" and rec["client_ip"] == ph.CLIENT_ADDR, rec
    assert rec["response"] == f"554 5.7.1 <victim@{ph.DENIED}>: Relay access denied", rec
    assert rec["relay"] is None and rec["message_id"] is None and rec["subject"] is None, rec

    # Relay denied after an accepted recipient: Postfix logs the session's queue ID.
    mixed = run.messages["mixed"]
    rec = by_key.get((mixed.queue_id, f"victim2@{ph.DENIED}"))
    expected_keys.add((mixed.queue_id, f"victim2@{ph.DENIED}"))
    assert rec is not None, sorted(by_key)
    assert (rec["status"], rec["dsn"], rec["attempts"]) == (Status.REJECTED, "5.7.1", 0), rec
    assert rec["sender"] == mixed.sender and rec["client_ip"] == ph.CLIENT_ADDR, rec
    assert rec["response"] == f"554 5.7.1 <victim2@{ph.DENIED}>: Relay access denied", rec

    # Bounce and delay notices: their own queue IDs, null sender, delivered to our senders.
    # An original queue ID can have several notices (delay, then non-delivery): map new -> old.
    notice_of = {new: old for old, new in re.findall(
        rf": ({Q}): sender (?:non-delivery|delay) notification: ({Q})$", text, re.M)}
    notices = [d for d in run.deliveries if d.mail_from == ""]
    assert len(notices) >= 3  # alice's bounce, dave's delay notice and dave's expiry (see the sinks test)
    for d in notices:
        rec = next((r for r in records if r["sender"] == "" and r["message_id"] == d.message_id), None)
        assert rec is not None, f"no record for the notice {d}"
        expected_keys.add((rec["queue_id"], rec["recipient"]))
        assert rec["recipient"] == d.rcpt and rec["status"] == Status.SENT and rec["dsn"] == "2.0.0", rec
        assert rec["queue_id"] in notice_of, (rec, notice_of)
        original = next(m for m in run.messages.values() if m.queue_id == notice_of[rec["queue_id"]])
        assert original.sender == d.rcpt, (rec, original)
        assert rec["relay"] == f"127.0.0.1[127.0.0.1]:{port['a']}" and rec["attempts"] == 1, rec
        assert rec["client_ip"] is None, rec  # locally generated: no smtpd client line
        assert rec["subject"] is None, rec    # header_checks do not apply to internal mail by default

    assert set(by_key) == expected_keys, f"unexpected records: {set(by_key) - expected_keys}"
