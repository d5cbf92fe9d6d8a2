#!/usr/bin/env python3
"""Data-source API latency on a large store, with ingest running.

Builds (once, cached in .bench/) a store of about --records delivery records over --days days:
a generated 1M-line corpus is ingested, then its rows are copied with shifted times, message
IDs and queue IDs until the store is large enough. Then `postfix-insights serve` runs on it
while a writer appends generated log lines to a followed file, and each query kind is timed
over HTTP (sequentially, as a Grafana dashboard refresh would issue them one panel at a time).
Prints medians and p95 per query kind; --write puts the table into BENCHMARKS.md.

    python bench/api_benchmark.py [--records 10000000] [--days 30] [--runs 20] [--write]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from service import free_port  # noqa: E402

from exporter.generator import generate  # noqa: E402
from exporter.config import StoreConfig  # noqa: E402
from exporter.store import db  # noqa: E402
from exporter.store.schema import SCHEMA_VERSION  # noqa: E402
from exporter.store import records as record_table  # noqa: E402

# table -> columns shifted by the copy's time offset / id offset / seq offset / queue-ID prefix
COPY = {
    "messages": ({"first_ts", "last_ts", "queued_ts", "expired_ts", "held_ts", "action_ts"}, {"msg_id"},
                 {"first_seq", "last_seq"}, {"queue_id"}),
    "attempts": ({"ts"}, {"msg_id"}, {"seq"}, set()),
    "rejects": ({"ts"}, {"msg_id"}, {"seq"}, {"queue_id"}),
    "links": ({"ts"}, {"parent_msg_id", "child_msg_id"}, set(), {"child_queue_id"}),
    "lines": ({"ts"}, {"msg_id"}, {"seq"}, set()),
}
# delivery_records is rebuilt from these afterwards


def build_store(records: int, days: int) -> Path:
    BENCH.mkdir(exist_ok=True)
    base_log = BENCH / "corpus-1000000.log"
    if not base_log.exists():
        generate(str(base_log), 1_000_000, seed=1, hosts=("mx1", "mx2"))
    # the store's format and row group size are part of what is measured: built with the current ones
    rg = StoreConfig.model_fields["row_group_rows"].default
    base = BENCH / f"api-base-v{SCHEMA_VERSION}-rg{rg}.duckdb"
    if not base.exists():
        print("ingesting the base corpus ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "exporter.cli", "ingest", "--db", str(base), "--year", "2026",
                        "--timezone", "UTC", str(base_log)], check=True, cwd=ROOT)
    target = BENCH / f"api-{records}-{days}d-v{SCHEMA_VERSION}-rg{rg}.duckdb"
    if target.exists():
        return target
    con = duckdb.connect(str(base), read_only=True)
    base_records = con.execute("SELECT count(*) FROM delivery_records").fetchall()[0][0]
    max_id, max_seq = con.execute("SELECT max(msg_id), (SELECT max(seq) FROM lines) FROM messages").fetchall()[0]
    t0, t1 = con.execute("SELECT min(first_ts), max(last_ts) FROM messages").fetchall()[0]
    con.close()
    copies = math.ceil(records / base_records)
    shift = timedelta(days=days) / copies
    print(f"base: {base_records} records over {t1 - t0}; {copies} copies, each {shift} later", file=sys.stderr)
    tmp = target.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    subprocess.run(["cp", str(base), str(tmp)], check=True)
    con = db.connect(tmp, row_group_rows=rg, memory_limit="8GB")  # the copies get the store's row group size
    con.execute(f"ATTACH '{base}' AS base (READ_ONLY)")
    for table, (times, ids, seqs, qids) in COPY.items():
        cols = [r[0] for r in con.execute(f"DESCRIBE base.{table}").fetchall()]
        exprs = []
        for c in cols:
            if c in times:
                exprs.append(f"{c} + to_microseconds((k * {int(shift.total_seconds() * 1e6)})::BIGINT) AS {c}")
            elif c in ids:
                exprs.append(f"{c} + k * {max_id + 1} AS {c}")
            elif c in seqs:
                exprs.append(f"{c} + k * {max_seq + 1} AS {c}")
            elif c in qids:
                exprs.append(f"CASE WHEN {c} IS NULL THEN NULL ELSE printf('%02X', k % 256) || substr({c}, 3) END AS {c}")
            else:
                exprs.append(c)
        started = time.perf_counter()
        con.execute(f"INSERT INTO {table} SELECT {', '.join(exprs)} FROM base.{table}, range(1, {copies}) r(k)")
        print(f"  {table}: copied in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    con.execute("DETACH base")
    started = time.perf_counter()
    record_table.rebuild(con)
    print(f"  delivery_records: rebuilt in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    con.execute("CHECKPOINT")
    n = con.execute("SELECT count(*) FROM delivery_records").fetchall()[0][0]
    db.disconnect(tmp, con)
    tmp.rename(target)
    print(f"store: {target} with {n} delivery records", file=sys.stderr)
    return target


def writer(path: Path, stop: threading.Event, rate: int) -> int:
    """Append generated lines at `rate` lines/s until stopped; returns lines written."""
    src = BENCH / "corpus-1000000.log"
    written = 0
    with src.open("rb") as lines, path.open("ab") as out:
        while not stop.is_set():
            chunk = [lines.readline() for _ in range(rate // 10)]
            out.write(b"".join(chunk))
            out.flush()
            written += len(chunk)
            stop.wait(0.1)
    return written


def timed(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as resp:
        body = json.loads(resp.read())
    elapsed = time.perf_counter() - started
    assert "items" in body, body
    return elapsed


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--ingest-rate", type=int, default=2000, help="lines/s appended while querying")
    ap.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = ap.parse_args()
    store = build_store(args.records, args.days)
    con = duckdb.connect(str(store), read_only=True)
    n_records, t0, t1 = con.execute("SELECT count(*), min(time), max(time) FROM delivery_records").fetchall()[0]
    rnd = random.Random(5)
    recipients = [r[0] for r in con.execute(
        "SELECT recipient FROM delivery_records WHERE recipient IS NOT NULL USING SAMPLE 200 ROWS").fetchall()]
    domains = [r[0] for r in con.execute(
        "SELECT rcpt_domain FROM delivery_records WHERE rcpt_domain IS NOT NULL USING SAMPLE 200 ROWS").fetchall()]
    subjects = [r[0] for r in con.execute(
        "SELECT subject FROM messages WHERE subject IS NOT NULL USING SAMPLE 2000 ROWS").fetchall()]
    words = [w for s in subjects for w in s.split() if len(w) > 4 and w.isalpha()]
    qids = [r[0] for r in con.execute(
        "SELECT queue_id FROM messages WHERE queue_id IS NOT NULL USING SAMPLE 200 ROWS").fetchall()]
    con.close()

    work = BENCH / "api-run"
    work.mkdir(exist_ok=True)
    live = work / "live.log"
    live.write_bytes(b"")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "exporter.cli", "serve", "--db", str(store), "--log", str(live),
                             "--listen", f"127.0.0.1:{port}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=(work / "serve.log").open("wb"))
    stop = threading.Event()
    wrote: list[int] = []
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base_url + "/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        pusher = threading.Thread(target=lambda: wrote.append(writer(live, stop, args.ingest_rate)), daemon=True)
        pusher.start()
        span = {"from": t0.replace(tzinfo=timezone.utc).isoformat(), "to": (t1 + timedelta(seconds=1))
                .replace(tzinfo=timezone.utc).isoformat()}
        kinds: dict[str, callable] = {
            "search: recipient": lambda: ("/api/v1/messages", {"recipient": rnd.choice(recipients), **span}),
            "search: domain": lambda: ("/api/v1/messages", {"domain": rnd.choice(domains), **span}),
            "search: subject": lambda: ("/api/v1/messages", {"subject": rnd.choice(words), **span}),
            "search: bounced, 5.1 prefix": lambda: ("/api/v1/messages", {"status": "bounced", "dsn": "5.1", **span}),
            "trace": lambda: (f"/api/v1/messages/{rnd.choice(qids)}", {}),
        }
        for name in ("volume", "rates", "sla", "domains", "slow-domains", "dsn", "rejects", "tls-coverage", "dkim",
                     "heatmap", "top-senders", "top-recipients", "summary"):
            kinds[f"stats: {name}"] = (lambda n=name: (f"/api/v1/stats/{n}", dict(span)))
        kinds["annotations"] = lambda: ("/api/v1/annotations", dict(span))
        kinds["values: domain"] = lambda: ("/api/v1/values/domain", dict(span))
        results = {}
        for name, make in kinds.items():
            times = []
            for _ in range(args.runs):
                path, params = make()
                times.append(timed(base_url + path + "?" + urllib.parse.urlencode(params)))
            results[name] = (statistics.median(times), pct(times, 0.95))
            print(f"{name:32} p50 {results[name][0] * 1000:7.0f} ms   p95 {results[name][1] * 1000:7.0f} ms",
                  file=sys.stderr)
    finally:
        stop.set()
        time.sleep(0.3)
        proc.terminate()
        proc.wait(60)
    lines = [f"Store: {n_records:,} delivery records over {(t1 - t0).days} days "
             f"({store.stat().st_size / 1e9:.1f} GB DuckDB file); `serve` following a log appended at "
             f"{args.ingest_rate} lines/s during the run ({sum(wrote):,} lines); {args.runs} sequential requests "
             f"per kind, random recipients/domains/subject words/queue IDs from the store; 2 cores. Generated "
             f"{datetime.now(timezone.utc):%Y-%m-%d} by `python bench/api_benchmark.py --write`.",
             "", "| query (30 days) | p50 ms | p95 ms | target p95 |", "|---|---:|---:|---:|"]
    for name, (p50, p95) in results.items():
        target = 200 if name.startswith(("search", "trace")) else 500
        mark = "" if p95 * 1000 <= target else " (over)"
        lines.append(f"| {name} | {p50 * 1000:.0f} | {p95 * 1000:.0f} | {target}{mark} |")
    text = "\n".join(lines)
    print(text)
    if args.write:
        md = ROOT / "BENCHMARKS.md"
        doc = md.read_text()
        begin, end = "<!-- api:begin -->", "<!-- api:end -->"
        if begin not in doc:
            doc += f"\n## Data-source API latency\n\n{begin}\n{end}\n"
        head, rest = doc.split(begin, 1)
        doc = head + begin + "\n" + text + "\n" + end + rest.split(end, 1)[1]
        md.write_text(doc)


if __name__ == "__main__":
    main()
