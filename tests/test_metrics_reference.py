"""docs/metrics.md lists every metric family the live registry serves, with its type and labels."""
from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from conftest import DATA
from exporter import metrics

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(?P<name>[a-z_]+)` \| (?P<type>\w+) \| (?P<labels>[^|]*) \| (?P<meaning>[^|]+) \|$")


def documented() -> dict[str, tuple[str, set[str]]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            labels = {x.strip(" `") for x in m["labels"].split(",") if x.strip(" `-")}
            rows[m["name"]] = (m["type"], labels)
    return rows


def live_families(tmp_path: Path) -> dict[str, tuple[str, set[str]]]:
    db = tmp_path / "s.duckdb"
    # the serve worker records metrics per batch; replay the golden logs through the same hook
    from exporter.config import CorrelatorConfig, ParserConfig, ReaderConfig, StoreConfig
    from exporter.ingest import Pipeline
    from exporter.store.db import Store

    store = Store(StoreConfig(path=db))
    metrics.install(store.con)
    pipeline = Pipeline(store, ReaderConfig(), ParserConfig(year=2026, timezone="UTC"), CorrelatorConfig(),
                        batch_hooks=[lambda con, info: metrics.record_batch(con)])
    pipeline.ingest_files([str(p) for p in sorted((DATA / "golden").glob("*.log"))])
    snapshot = metrics.Snapshot()
    snapshot.load(store.con)
    snapshot.set_gauge("open_queue_ids", "x", {(): 1})
    snapshot.set_gauge("intake_queued_lines", "x", {(): 0})
    snapshot.set_gauge("last_commit_timestamp_seconds", "x", {(): 1})
    snapshot.set_gauge("ingest_lag_seconds", "x", {(("source", "mail.log"),): 1})
    snapshot.set_gauge("postqueue_up", "x", {(("reason", "ok"),): 1})
    for name in ("queue_messages", "queue_bytes", "queue_oldest_message_age_seconds"):
        snapshot.set_gauge(name, "x", {(("queue", "deferred"),): 1})
    store.close()
    registry = CollectorRegistry()
    registry.register(metrics.StoreCollector(snapshot, kumina=True))
    families = {}
    for fam in registry.collect():
        labels = {k for s in fam.samples for k in s.labels if k not in ("le",)}
        name = fam.name + ("_total" if fam.type == "counter" else "")
        families[name] = (fam.type, labels)
    return families


def test_every_live_metric_is_documented_and_nothing_else(tmp_path: Path) -> None:
    live = live_families(tmp_path)
    docs = documented()
    assert set(live) == set(docs), (set(live) ^ set(docs))
    for name, (kind, labels) in live.items():
        assert docs[name][0] == kind, name
        assert labels <= docs[name][1], (name, labels, docs[name][1])


def test_every_family_has_help() -> None:
    ours = {n.removeprefix(metrics.PREFIX) for n in documented() if n.startswith(metrics.PREFIX) and n.endswith("_total")}
    assert set(metrics.HELP) >= ours
