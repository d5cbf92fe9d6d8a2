"""The corpus generator: deterministic, in time order, every scenario present, and its ground
truth derivable from the log alone by the rules in exporter.generator.GROUND_TRUTH_RULES
(checked with a small independent reference reader below)."""
from __future__ import annotations

import io
import json
import re
import time
from collections import Counter
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import pytest

from exporter import generator
from exporter.records import DELIVERY_RECORD_KEYS, Status, iso_utc

LINES = 20_000
MONTHS = {m: i + 1 for i, m in enumerate(generator.MONTHS)}


def _generate(n: int = LINES, **kwargs: Any) -> tuple[bytes, list[dict], generator.GeneratorStats]:
    out, truth = io.BytesIO(), io.BytesIO()
    stats = generator.generate(out, n, truth=truth, **kwargs)
    records = [json.loads(line) for line in truth.getvalue().decode().splitlines()]
    return out.getvalue(), records, stats


@pytest.fixture(scope="module")
def corpus() -> tuple[bytes, list[dict], generator.GeneratorStats]:
    return _generate()


# ---- a reference reader, deliberately naive (regexes, one line at a time) ----------------------

BSD = re.compile(r"^([A-Z][a-z]{2}) ([ 0-9][0-9]) (\d\d):(\d\d):(\d\d) (\S+) ([^\[: ]+)(?:\[(\d+)\])?: (.*)$")
RFC = re.compile(r"^(\S+) (\S+) ([^\[: ]+)(?:\[(\d+)\])?: (.*)$")
DELIVERY = re.compile(r"^([0-9A-F]+): to=<([^>]*)>, (?:orig_to=<([^>]*)>, )?relay=(\S+), delay=([0-9.]+),"
                      r" delays=\S+, dsn=(\S+), status=(\w+) \((.*)\)$")
SUBJECT = re.compile(r"^([0-9A-F]+): info: header Subject: (.*) from \S+; from=<[^>]*> to=<[^>]*>"
                     r"(?: proto=\S+ helo=<[^>]*>)?$")
REJECT = re.compile(r"^NOQUEUE: reject: RCPT from [^\[]*\[([^\]]+)\]: (.*); from=<([^>]*)> to=<([^>]*)> proto=")
TLS_OUT = re.compile(r"^\w+ TLS connection established to .*: (TLSv[0-9.]+) with cipher ")


def _parse_time(line: str, fmt: str) -> tuple[datetime, str, str, str, str]:
    """(time, host, tag, pid, text) of a line."""
    if fmt == "rfc3339":
        m = RFC.match(line)
        assert m, line
        return datetime.fromisoformat(m[1]), m[2], m[3], m[4] or "", m[5]
    m = BSD.match(line)
    assert m, line
    ts = datetime(2026, MONTHS[m[1]], int(m[2]), int(m[3]), int(m[4]), int(m[5]), tzinfo=UTC)
    return ts, m[6], m[7], m[8] or "", m[9]


def _record(msg: dict, ts: datetime, **fields: Any) -> dict:
    rec = dict.fromkeys(DELIVERY_RECORD_KEYS)
    rec.update(time=iso_utc(ts), host=msg["host"], queue_id=msg["qid"], message_id=msg.get("message_id"),
               sender=msg.get("sender"), subject=msg.get("subject"), client_ip=msg.get("client_ip"),
               attempts=0)
    rec.update(fields)
    return rec


def reference_records(log: bytes, fmt: str) -> list[dict]:
    """Delivery records by the documented rules, read from the log alone."""
    open_msgs: dict[tuple[str, str], dict] = {}
    last_of_process: dict[tuple[str, str, str], tuple[str, str | None, str | None] | None] = {}
    records: list[dict] = []

    def finish(msg: dict) -> None:
        if not msg["rcpts"]:
            records.append(_record(msg, msg["queued"], status="pending"))
        for ts, fields in msg["rcpts"].values():
            records.append(_record(msg, ts, **fields))

    for line in log.decode().splitlines():
        ts, host, tag, pid, text = _parse_time(line, fmt)
        if not tag.startswith("postfix"):
            continue
        proc = (host, tag, pid)
        prior, last_of_process[proc] = last_of_process.get(proc), None
        if m := REJECT.match(text):
            noqueue = {"host": host, "qid": None, "client_ip": m[1], "sender": m[3]}
            records.append(_record(noqueue, ts, recipient=m[4], status="rejected", dsn=m[2].split(" ")[1],
                                   response=m[2]))
            continue
        if m := TLS_OUT.match(text):
            last_of_process[proc] = ("tls", m[1], None)
            continue
        qid, _, rest = text.partition(": ")
        if not re.fullmatch(r"[0-9A-F]{10,11}", qid):
            continue
        msg = open_msgs.setdefault((host, qid), {"host": host, "qid": qid, "rcpts": {}, "queued": None})
        if rest.startswith("client="):
            msg["client_ip"] = re.match(r"client=[^\[]*\[([^\]]+)\]", rest)[1]
        elif rest.startswith("message-id=<"):
            msg["message_id"] = rest[len("message-id=<"):-1]
        elif m := SUBJECT.match(text):
            msg["subject"] = str(make_header(decode_header(m[2])))
        elif tag.endswith("/qmgr") and rest.startswith("from=<"):
            msg["sender"] = rest[len("from=<"):rest.index(">, ")]
            msg["queued"] = msg["queued"] or ts
            if rest.endswith("status=expired, returned to sender"):
                for rcpt, (_, fields) in msg["rcpts"].items():
                    if fields["status"] == "deferred":
                        msg["rcpts"][rcpt] = (ts, {**fields, "status": "expired"})
        elif m := DELIVERY.match(text):
            tls = prior[1] if prior and (prior[0] == "tls" or prior[2] == qid) else None
            last_of_process[proc] = ("delivery", tls, qid)
            attempts = msg["rcpts"][m[2]][1]["attempts"] if m[2] in msg["rcpts"] else 0
            msg["rcpts"][m[2]] = (ts, {"recipient": m[2], "orig_recipient": m[3], "relay": m[4],
                                       "delay_seconds": float(m[5]), "dsn": m[6], "status": m[7],
                                       "response": m[8], "tls": tls, "attempts": attempts + 1})
        elif rest == "removed":
            finish(open_msgs.pop((host, qid)))
    for msg in open_msgs.values():
        finish(msg)
    return records


def _key(rec: dict) -> str:
    return json.dumps(rec, sort_keys=True, ensure_ascii=False)


# ---- tests --------------------------------------------------------------------------------------


def test_same_seed_same_bytes() -> None:
    first = _generate(3000, seed=5, hosts=("mx1", "mx2"))
    second = _generate(3000, seed=5, hosts=("mx1", "mx2"))
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert _generate(3000, seed=6)[0] != first[0]


@pytest.mark.parametrize("n", [1000, LINES, 100_000])
def test_size_is_about_what_was_asked(n: int) -> None:
    out = io.BytesIO()
    stats = generator.generate(out, n)
    lines = out.getvalue().count(b"\n")
    assert stats.lines == lines
    assert n <= lines <= n * 1.02 + 200


def test_every_scenario_is_present(corpus: tuple[bytes, list[dict], generator.GeneratorStats]) -> None:
    log, records, stats = corpus
    by_status = Counter(rec["status"] for rec in records)
    assert by_status == stats.by_status
    assert stats.records == len(records)
    for status in ("sent", "deferred", "bounced", "expired", "rejected", "pending"):
        assert by_status[status] > 0, status
    assert by_status["sent"] > 0.75 * len(records)          # mostly sent
    text = log.decode()
    for needle in (" postfix/submission/smtpd[", " postfix-out/smtp[", " postfix/pickup[", " postfix/lmtp[",
                   " postfix/virtual[", " postfix/pipe[", " postfix/local[", " postfix/bounce[",
                   "relay=127.0.0.1[127.0.0.1]:10024", "status=expired, returned to sender",
                   "sender non-delivery notification: ", "sasl_method=PLAIN", "orig_to=<",
                   "Trusted TLS connection established to", "Untrusted TLS connection established to",
                   "Anonymous TLS connection established from", ": Connection refused", "relay=none",
                   "Greylisted", "NOQUEUE: reject: RCPT from", "PASS NEW", "DNSBL rank 3 for",
                   "postfix/anvil[", "SASL LOGIN authentication failed", "does not resolve to address",
                   " opendkim[", " dovecot: lmtp(", " amavis[", " policyd-spf[", "=?UTF-8?B?", "=?utf-8?Q?",
                   "message-id=<>", "from=<>", "status=bounced"):
        assert needle in text, needle
    assert any(rec["recipient"] is None for rec in records if rec["status"] == "pending")
    assert any(rec["attempts"] >= 2 and rec["status"] == "sent" for rec in records)
    assert any(rec["tls"] == "TLSv1.3" for rec in records)
    assert any(rec["client_ip"] == "127.0.0.1" for rec in records)
    assert any(rec["sender"] == "" and rec["subject"] == generator.NOTICE_SUBJECT for rec in records)
    subjects = {rec["subject"] for rec in records}
    assert {"Grüße aus München", "🎉 Big sale today only", "status=bounced", "<script>alert(1)</script>"} <= subjects


def test_subject_table_decodes_to_its_truth() -> None:
    for logged, decoded in generator._subject_table():
        assert str(make_header(decode_header(logged))) == decoded, logged


@pytest.mark.parametrize("fmt", generator.FORMATS)
def test_time_never_goes_back(fmt: str) -> None:
    log, _, _ = _generate(5000, timestamp_format=fmt, hosts=("mx1", "mx2", "relay3"))
    times = [_parse_time(line, fmt)[0] for line in log.decode().splitlines()]
    assert times == sorted(times)
    assert times[0] >= datetime(2026, 11, 1, tzinfo=UTC)


def test_timestamp_formats() -> None:
    start = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
    first = {fmt: _generate(50, timestamp_format=fmt, start=start)[0].split(b"\n", 1)[0].decode()
             for fmt in generator.FORMATS}
    assert re.match(r"^Nov  5 12:00:\d\d mx1 postfix", first["bsd"])
    assert re.match(r"^Nov 05 12:00:\d\d mx1 postfix", first["maillog"])
    assert re.match(r"^2026-11-05T12:00:\d\d\.\d{6}\+00:00 mx1 postfix", first["rfc3339"])


def test_truth_keys_and_order(corpus: tuple[bytes, list[dict], generator.GeneratorStats]) -> None:
    _, records, _ = corpus
    assert all(tuple(rec) == DELIVERY_RECORD_KEYS for rec in records)
    assert {rec["status"] for rec in records} <= {s.value for s in Status}
    keys = [(r["host"], r["queue_id"] or "", r["recipient"] or "", r["time"]) for r in records]
    assert keys == sorted(keys)


@pytest.mark.parametrize("fmt", generator.FORMATS)
def test_truth_follows_from_the_log(fmt: str) -> None:
    log, records, _ = _generate(LINES, timestamp_format=fmt, hosts=("mx1", "mx2"), seed=3)
    expected = sorted(map(_key, reference_records(log, fmt)))
    assert sorted(map(_key, records)) == expected


def test_queue_ids_are_reused(corpus: tuple[bytes, list[dict], generator.GeneratorStats]) -> None:
    log, records, _ = corpus
    removed = Counter(re.findall(rb" postfix/qmgr\[\d+\]: ([0-9A-F]+): removed\n", log))
    assert 1 <= sum(1 for n in removed.values() if n > 1) <= 0.02 * len(removed)
    assert all(10 <= len(qid) <= 11 for qid in removed)
    per_qid = Counter((r["host"], r["queue_id"], r["message_id"]) for r in records if r["queue_id"])
    assert len({key[:2] for key in per_qid}) < len(per_qid)


def test_cli_writes_log_and_truth(tmp_path: Path) -> None:
    log, truth = tmp_path / "mail.log", tmp_path / "truth.jsonl"
    assert generator.main(["--lines", "2000", "--seed", "9", "--out", str(log), "--truth", str(truth),
                           "--format", "rfc3339", "--start", "2026-12-31T23:59:00Z", "--hosts", "a,b"]) == 0
    in_memory, records, _ = _generate(2000, seed=9, timestamp_format="rfc3339",
                                      start=datetime(2026, 12, 31, 23, 59, tzinfo=UTC), hosts=("a", "b"))
    assert log.read_bytes() == in_memory
    assert [json.loads(line) for line in truth.read_text().splitlines()] == records
    assert {rec["host"] for rec in records} == {"a", "b"}


def test_speed_sanity(capsys: pytest.CaptureFixture[str]) -> None:
    """Not a timed assertion: prints the rate (pytest -s) and checks a big run is consistent."""
    began = time.perf_counter()
    out = io.BytesIO()
    stats = generator.generate(out, 200_000)
    elapsed = time.perf_counter() - began
    assert stats.lines == out.getvalue().count(b"\n")
    with capsys.disabled():
        print(f"\ngenerator: {stats.lines / elapsed:,.0f} lines/s")
