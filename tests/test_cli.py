"""The `demo` command: what `make run` shows a new user before they have a log of their own."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from conftest import run_cli, search_json


def test_demo_shows_three_days_of_traffic_ending_now(db: Path) -> None:
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    proc = run_cli("demo", "--no-serve", "--lines", "20000", "--db", str(db))
    after = datetime.now(timezone.utc).replace(tzinfo=None)
    out = proc.stdout.decode()
    assert "latest bounces" in out and "bounced" in out
    times = [datetime.fromisoformat(r["time"].rstrip("Z")) for r in search_json(db)]
    # retries and expiries run past the last arriving message: the log still ends now, not
    # hours ahead of the clock (where the pages' "last 24 hours" would not show it)
    assert before - timedelta(minutes=5) < max(times) <= after
    assert min(times) < before - timedelta(days=3)
    statuses = {r["status"] for r in search_json(db, "--since", (before - timedelta(days=1)).isoformat())}
    assert {"sent", "deferred", "bounced"} <= statuses
