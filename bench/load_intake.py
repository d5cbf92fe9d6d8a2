#!/usr/bin/env python3
"""Bounded load test: N lines pushed to `serve` over the Loki push API (protobuf + raw snappy,
as Alloy's loki.write sends them) while /metrics and /healthz are scraped every second.

Reports the sustained ingest rate and scrape latencies; with --write, updates BENCHMARKS.md.
Loopback only; stops by itself after --max-seconds.

    python bench/load_intake.py [--lines 1000000] [--batch 10000] [--write]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from service import Service, metric_sum  # noqa: E402
from test_sources_intake import push_request  # noqa: E402

MARK_BEGIN, MARK_END = "<!-- load:begin -->", "<!-- load:end -->"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--pushers", type=int, default=4, help="concurrent pushers, like several mail hosts")
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    corpus = ROOT / ".bench" / f"corpus-{args.lines}.log"
    if not corpus.exists():
        corpus.parent.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "exporter.generator", "--lines", str(args.lines), "--seed", "42",
                        "--out", str(corpus), "--hosts", "mx1,mx2"], check=True, cwd=ROOT)
    lines = corpus.read_text(encoding="utf-8", errors="replace").splitlines()
    tmp = Path(tempfile.mkdtemp(prefix="pi-load-"))
    svc = Service(tmp, tmp / "load.duckdb", [])
    scrapes: list[float] = []
    health: list[float] = []
    searches: list[float] = []
    stop = threading.Event()

    def scraper() -> None:
        while not stop.is_set():
            for path, out in (("/metrics", scrapes), ("/healthz", health),
                              ("/api/v1/messages?domain=example.org&status=bounced&limit=100", searches)):
                t = time.perf_counter()
                urllib.request.urlopen(svc.url + path, timeout=30).read()
                out.append(time.perf_counter() - t)
            stop.wait(1.0)

    thread = threading.Thread(target=scraper, daemon=True)
    thread.start()
    retries = 0
    start = time.perf_counter()
    deadline = start + args.max_seconds
    retries_lock = threading.Lock()

    def push(i: int) -> None:
        nonlocal retries
        body = push_request([(f'{{host="mx{i % args.pushers}", job="postfix"}}',
                              [(0, 0, ln) for ln in lines[i:i + args.batch]])])
        while time.perf_counter() < deadline:
            req = urllib.request.Request(svc.url + "/loki/api/v1/push", data=body, method="POST",
                                         headers={"Content-Type": "application/x-protobuf"})
            try:
                urllib.request.urlopen(req, timeout=60).read()
                return
            except urllib.error.HTTPError as exc:
                if exc.code not in (429, 503):
                    raise
                with retries_lock:
                    retries += 1
                time.sleep(0.2)

    try:
        # each pusher sends its share in order, as one mail host's Alloy would
        with ThreadPoolExecutor(args.pushers) as pool:
            for _ in pool.map(push, range(0, len(lines), args.batch)):
                pass
        svc.wait_idle(len(lines), timeout=max(1.0, deadline - time.perf_counter()))
        wall = time.perf_counter() - start
        read = metric_sum(svc.metrics_text(), "postfix_insights_lines_read_total")
    finally:
        stop.set()
        thread.join(timeout=30)
        svc.stop()
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")  # noqa: E731
    result = (f"{int(read):,} lines pushed by {args.pushers} concurrent pushers in requests of {args.batch:,} lines "
              f"over the Loki push API "
              f"(protobuf + snappy): {wall:.1f} s, sustained {read / wall:,.0f} lines/s; {retries} pushes "
              f"answered 429/503 and retried. While loading, `/metrics` took p50 {q(scrapes, .5):.0f} ms / "
              f"p95 {q(scrapes, .95):.0f} ms ({len(scrapes)} scrapes) and `/healthz` p50 {q(health, .5):.0f} ms / "
              f"p95 {q(health, .95):.0f} ms; a search by domain and status (`/api/v1/messages`, what the CLI "
              f"uses while the service runs) p50 {q(searches, .5):.0f} ms / p95 {q(searches, .95):.0f} ms.")
    print(result)
    if args.write:
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text()
        head, _, rest = text.partition(MARK_BEGIN)
        _, _, tail = rest.partition(MARK_END)
        path.write_text(f"{head}{MARK_BEGIN}\n{result}\n{MARK_END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
