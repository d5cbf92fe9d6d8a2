#!/usr/bin/env python3
"""Ingest benchmark: postfix-insights next to pflogsumm and prometheus-postfix-exporter.

Generates corpora with the project's generator (cached in .bench/), runs each tool on the
same file several times (in rounds: every tool once per round) and prints medians of wall
time, lines/s and peak RSS; with --write, replaces the generated section of BENCHMARKS.md.

    python bench/benchmark.py [--lines 1000000 5000000] [--runs 3] [--write]

The exporter only tails (it has no batch mode): it is started on an empty file, the whole log
is appended to that file, and it is done when its counters stop moving (its tailer did not
notice a renamed-in file here, so appending is what it reads).
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench"
MARK_BEGIN = "<!-- benchmark:begin -->"
MARK_END = "<!-- benchmark:end -->"


def corpus(lines: int) -> Path:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"corpus-{lines}.log"
    if not path.exists():
        print(f"generating {path} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "exporter.generator", "--lines", str(lines), "--seed", "42",
                        "--out", str(path), "--hosts", "mx1,mx2"], check=True, cwd=ROOT)
    return path


def timed(cmd: list[str], **kw) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a command, via GNU time."""
    with tempfile.NamedTemporaryFile("r") as out:
        start = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *cmd], check=True,
                       stdout=subprocess.DEVNULL, **kw)
        wall = time.perf_counter() - start
        return wall, int(out.read().strip().splitlines()[-1])


def run_ours(log: Path) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        exe = shutil.which("postfix-insights", path=str(ROOT / ".venv" / "bin")) or "postfix-insights"
        return timed([exe, "ingest", "--db", f"{tmp}/bench.duckdb", "--year", "2026", "--timezone", "UTC", str(log)],
                     stderr=subprocess.DEVNULL)


def run_pflogsumm(log: Path) -> tuple[float, int]:
    return timed(["pflogsumm", str(log)], stderr=subprocess.DEVNULL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exporter_total(url: str) -> float:
    try:
        text = urllib.request.urlopen(url, timeout=2).read().decode()
    except OSError:
        return -1.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith("postfix_") and not line.startswith("postfix_up"):
            m = re.search(r" ([0-9.e+-]+)$", line)
            if m and ("_total" in line or "_count" in line):
                total += float(m[1])
    return total


def run_exporter(log: Path) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "mail.log"
        target.write_bytes(b"")
        port = _free_port()
        proc = subprocess.Popen(["prometheus-postfix-exporter", f"--web.listen-address=127.0.0.1:{port}",
                                 f"--postfix.logfile_path={target}", "--postfix.showq_path=/nonexistent"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/metrics"
            deadline = time.monotonic() + 10
            while _exporter_total(url) < 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            start = time.perf_counter()
            with open(log, "rb") as src, open(target, "ab") as dst:
                shutil.copyfileobj(src, dst, 16 << 20)
            last, last_change = 0.0, start
            while time.perf_counter() - last_change < 3.0 and time.perf_counter() - start < 600:
                time.sleep(0.2)
                total = _exporter_total(url)
                if total != last:
                    last, last_change = total, time.perf_counter()
            wall = last_change - start
            rss = _peak_rss_kib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        return wall, rss


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


TOOLS = {
    "postfix-insights ingest (parse, correlate, store)": run_ours,
    "pflogsumm 1.1.5 (report)": run_pflogsumm,
    "prometheus-postfix-exporter 0.3.0 (counters)": run_exporter,
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tools", nargs="*", default=None, help="substrings of tool names to run")
    ap.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = ap.parse_args()
    rows = []
    for n in args.lines:
        log = corpus(n)
        lines = sum(1 for _ in open(log, "rb"))
        size = log.stat().st_size
        subprocess.run(["cat", str(log)], stdout=subprocess.DEVNULL, check=True)  # page cache, as for every tool
        tools = {}
        for name, fn in TOOLS.items():
            if args.tools and not any(t in name for t in args.tools):
                continue
            if fn is not run_ours and shutil.which(name.split()[0]) is None:
                print(f"skip {name}: not installed", file=sys.stderr)
                continue
            tools[name] = fn
        # round by round, each tool once per round: the machine's speed drifts over minutes,
        # and a drift then slows every tool's runs alike instead of one tool's
        by_tool: dict[str, list[tuple[float, int]]] = {name: [] for name in tools}
        for _ in range(args.runs):
            for name, fn in tools.items():
                by_tool[name].append(fn(log))
        for name, results in by_tool.items():
            wall = statistics.median(r[0] for r in results)
            rss = statistics.median(r[1] for r in results)
            rows.append((n, lines, size, name, wall, rss, [round(r[0], 2) for r in results]))
            print(f"{lines:>9} lines  {name:52} median {wall:7.2f} s  {lines / wall:>10,.0f} lines/s  "
                  f"peak RSS {rss / 1024:6.0f} MiB  runs {[round(r[0], 2) for r in results]}", file=sys.stderr)
    if args.write:
        write_markdown(rows, args.runs)
    return 0


def write_markdown(rows: list[tuple], runs: int) -> None:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    out = [MARK_BEGIN, "",
           f"Measured {datetime.now(timezone.utc):%Y-%m-%d} on {os.cpu_count()} cores ({cpu}), "
           f"Python {platform.python_version()}; corpus from `exporter.generator` (seed 42, hosts mx1,mx2), "
           f"file in page cache; median of {runs} runs, the tools taking turns (`python bench/benchmark.py --write`).", "",
           "| corpus | tool | median wall s | lines/s | peak RSS MiB | runs (s) |",
           "|---|---|---:|---:|---:|---|"]
    for n, lines, size, name, wall, rss, runs_s in rows:
        out.append(f"| {lines:,} lines, {size / 1e6:.0f} MB | {name} | {wall:.2f} | {lines / wall:,.0f} | "
                   f"{rss / 1024:.0f} | {', '.join(map(str, runs_s))} |")
    out += ["", MARK_END]
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{MARK_BEGIN}\n{MARK_END}\n"
    head, _, rest = text.partition(MARK_BEGIN)
    _, _, tail = rest.partition(MARK_END)
    path.write_text(head + "\n".join(out) + tail)


if __name__ == "__main__":
    sys.exit(main())
