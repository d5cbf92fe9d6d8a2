"""The Grafana plugin's data source against a real `postfix-insights serve`: jest runs
grafana-plugin/src/live.test.ts (every query type the plugin sends, through a stand-in for
Grafana's data proxy that adds the bearer token) with PI_URL pointing at the service."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from exporter import generator
from tests.service import ROOT, Service

PLUGIN = ROOT / "grafana-plugin"
TOKEN = "live-test-token-0123456789"


def test_the_plugin_queries_a_running_service(tmp_path: Path) -> None:
    npx = shutil.which("npx")
    if npx is None or not (PLUGIN / "node_modules" / ".bin" / "jest").exists():
        pytest.skip("the plugin's npm packages are not installed (make plugin-test installs them)")
    log = tmp_path / "mail.log"
    # traffic of the last hours: the plugin asks for the last 7 days
    start = datetime.now(timezone.utc) - timedelta(hours=6)
    made = generator.generate(log, 5_000, seed=3, hosts=("mx1", "mx2"), timestamp_format="rfc3339", start=start,
                              messages_per_second=0.05)
    svc = Service(tmp_path, tmp_path / "s.duckdb", ["--log", str(log)], config=f'[api]\ntokens = ["{TOKEN}"]\n')
    try:
        svc.wait_idle(made.lines)
        proc = subprocess.run([npx, "jest", "--ci", "src/live.test.ts"], cwd=PLUGIN, capture_output=True,
                              env={**os.environ, "PI_URL": svc.url, "PI_TOKEN": TOKEN}, timeout=300)
    finally:
        svc.stop()
    report = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0, report
    # every test ran: none skipped (PI_URL unset skips them all)
    assert re.search(r"Tests:\s+(\d+) passed, \1 total", report), report
