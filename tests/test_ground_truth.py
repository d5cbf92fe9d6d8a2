"""The generator's ground truth equals what `search` reports, across formats and batch sizes."""
from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from conftest import run_cli, search_json
from exporter import generator


def _multiset(records: list[dict]) -> collections.Counter:
    return collections.Counter(json.dumps(r, sort_keys=True) for r in records)


@pytest.mark.parametrize("lines,fmt,batch_mb", [
    (100_000, "bsd", 32),       # the whole corpus in one batch
    (100_000, "bsd", 1),        # ~15 batches: messages span batch boundaries
    (30_000, "rfc3339", 1),
    (30_000, "maillog", 32),
])
def test_search_equals_ground_truth(tmp_path: Path, lines: int, fmt: str, batch_mb: int) -> None:
    log, truth = tmp_path / "corpus.log", tmp_path / "truth.jsonl"
    stats = generator.generate(log, lines, seed=11, hosts=("mx1", "mx2"), timestamp_format=fmt, truth=truth)
    db = tmp_path / "s.duckdb"
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", "--batch-mb", str(batch_mb), str(log))
    expected = [json.loads(line) for line in truth.read_text().splitlines()]
    actual = search_json(db)
    assert len(actual) == stats.records
    missing, extra = _multiset(expected) - _multiset(actual), _multiset(actual) - _multiset(expected)
    assert not missing and not extra, (list(missing)[:3], list(extra)[:3])
