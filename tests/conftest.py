"""Shared fixtures: run the real CLI against real DuckDB files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SHARED_SAMPLES = ROOT.parent / "shared" / "samples"


def run_cli(*args: str, check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """Run `postfix-insights` as a user would, in a subprocess."""
    proc = subprocess.run([sys.executable, "-m", "exporter.cli", *args], input=stdin, capture_output=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"postfix-insights {' '.join(args)} exited {proc.returncode}:\n{proc.stderr.decode()}")
    return proc


def search_json(db: Path, *args: str) -> list[dict]:
    out = run_cli("search", "--db", str(db), "--format", "json", "--limit", "100000", *args).stdout.decode()
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"
