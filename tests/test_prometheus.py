"""A real Prometheus (Debian's package, on loopback) scrapes `serve`; its numbers match the corpus."""
from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import search_json
from exporter import generator
from service import Service, free_port, http_get

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None and not os.environ.get("CI"),
                                reason="prometheus not installed (.ci/run installs it)")


def _query(base: str, promql: str) -> list[dict]:
    status, body = http_get(f"{base}/api/v1/query?query={urllib.parse.quote(promql)}")
    assert status == 200, body
    return json.loads(body)["data"]["result"]


def test_prometheus_scrape_matches_ingested_corpus(tmp_path: Path) -> None:
    assert PROMETHEUS, "prometheus is not installed: .ci/run installs Debian's prometheus"
    log = tmp_path / "mail.log"
    generator.generate(log, 20_000, seed=21, truth=tmp_path / "truth.jsonl")
    svc = Service(tmp_path, tmp_path / "s.duckdb", ["--log", str(log)])
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: postfix-insights\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{svc.port}']\n")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        svc.wait_idle(log.read_bytes().count(b"\n"))
        truth = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text().splitlines()]
        deadline = time.monotonic() + 60
        seen: dict[str, float] = {}
        while time.monotonic() < deadline:
            try:
                up = _query(base, 'up{job="postfix-insights"}')
                result = _query(base, "sum by (status) (postfix_insights_deliveries_total)")
            except OSError:
                time.sleep(0.5)
                continue
            seen = {r["metric"]["status"]: float(r["value"][1]) for r in result}
            if up and up[0]["value"][1] == "1" and seen.get("sent"):
                break
            time.sleep(0.5)
        rejects = _query(base, "sum(postfix_insights_rejects_total)")
        received = _query(base, "sum(postfix_insights_messages_received_total)")
        unparsed = _query(base, "sum(postfix_insights_unparsed_lines_total) or vector(0)")
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        svc.stop()
    by_status = collections.Counter(r["status"] for r in truth)
    # every recipient that ended sent was delivered once; attempts add up across all records
    assert seen["sent"] == by_status["sent"]
    assert seen["sent"] + seen.get("deferred", 0) + seen.get("bounced", 0) == sum(
        r["attempts"] for r in truth if r["status"] != "rejected")
    assert float(rejects[0]["value"][1]) == by_status["rejected"]
    records = search_json(tmp_path / "s.duckdb")
    assert float(received[0]["value"][1]) == len({(r["host"], r["queue_id"], r["message_id"]) for r in records
                                                  if r["queue_id"]})
    assert float(unparsed[0]["value"][1]) == 0
