"""Golden tests: sample logs in tests/data/ with the records and line counts they must produce.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/test_golden.py`, then
read the diff of the .expected files line by line before committing it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

from conftest import DATA, SHARED_SAMPLES, run_cli, search_json

GOLDEN = DATA / "golden"
SAMPLES = DATA / "samples"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _sort_key(rec: dict) -> tuple:
    """A total order: records with equal host, queue ID, recipient, time and status (repeated
    rejects) still sort the same way whatever order search returned them in."""
    main = tuple("" if rec[k] is None else str(rec[k]) for k in ("host", "queue_id", "recipient", "time", "status"))
    return main + (json.dumps(rec, sort_keys=True),)


def _line_counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("""SELECT category || ':' || coalesce(name, ''), sum(n)::BIGINT FROM line_counts
                              GROUP BY 1 ORDER BY 1""").fetchall()
    finally:
        con.close()
    return dict(rows)


def _check(log: Path, db: Path, expected_dir: Path) -> None:
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", str(log))
    actual = {"records": sorted(search_json(db), key=_sort_key), "line_counts": _line_counts(db)}
    expected_file = expected_dir / (log.name + ".expected.json")
    if UPDATE:
        expected_file.write_text(json.dumps(actual, indent=1, ensure_ascii=False, sort_keys=False) + "\n")
    expected = json.loads(expected_file.read_text())
    assert actual["line_counts"] == expected["line_counts"]
    assert actual["records"] == sorted(expected["records"], key=_sort_key)


@pytest.mark.parametrize("log", sorted(GOLDEN.glob("*.log")), ids=lambda p: p.stem)
def test_golden_scenario(log: Path, db: Path) -> None:
    _check(log, db, GOLDEN)


def test_real_postfix_maillog(db: Path) -> None:
    """A maillog written by a real Postfix 3.7 (tests/postfix_harness.py) parses to its golden records."""
    _check(DATA / "postfix-e2e-maillog.log", db, DATA)


@pytest.mark.parametrize("log", sorted(SAMPLES.glob("*.log")) + sorted(SAMPLES.glob("*maillog")), ids=lambda p: p.name)
def test_public_sample(log: Path, db: Path) -> None:
    """Every line of the public samples parses or is counted by reason: none is lost."""
    _check(log, db, SAMPLES)
    counts = _line_counts(db)
    lines = [ln for ln in log.read_bytes().split(b"\n") if ln.strip()]
    assert sum(v for k, v in counts.items() if k.startswith("kind:")) == len(lines)


def test_samples_match_shared_copies() -> None:
    """tests/data/samples are unchanged copies of ../shared/samples (when it is there)."""
    if not SHARED_SAMPLES.is_dir():
        pytest.skip("../shared/samples not present")
    for copy in SAMPLES.iterdir():
        if copy.name.endswith(".expected.json") or copy.name == "README.md":
            continue
        assert copy.read_bytes() == (SHARED_SAMPLES / copy.name).read_bytes(), copy.name


def test_ingesting_again_adds_nothing(db: Path) -> None:
    log = GOLDEN / "delivery.log"
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", str(log))
    first = search_json(db)
    counts = _line_counts(db)
    proc = run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", str(log))
    assert "already ingested" in proc.stderr.decode()
    assert search_json(db) == first
    assert _line_counts(db) == counts
