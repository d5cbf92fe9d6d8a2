"""Queue gauges from `postqueue -j`, and a clear reason when it cannot run."""
from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from exporter import metrics
from exporter.sources import postqueue


def test_summarize_counts_bytes_and_oldest_age() -> None:
    out = "\n".join(json.dumps(m) for m in [
        {"queue_name": "deferred", "arrival_time": 1000, "message_size": 10},
        {"queue_name": "deferred", "arrival_time": 400, "message_size": 5},
        {"queue_name": "hold", "arrival_time": 900, "message_size": 1}]) + "\nnot json\n"
    state = postqueue.summarize(out, now=1000)
    assert state.ok and state.messages["deferred"] == 2 and state.messages["active"] == 0
    assert state.bytes["deferred"] == 15 and state.oldest_age_seconds["deferred"] == 600


def test_reasons_when_it_cannot_run() -> None:
    assert postqueue.read(["/nonexistent/postqueue", "-j"]).problem == "not_found"
    assert postqueue.read(["false"]).problem == "failed"
    assert postqueue.read(["sleep", "5"], timeout_seconds=0.2).problem == "timeout"


def test_kumina_showq_histograms_describe_the_queue_as_it_is() -> None:
    out = "\n".join(json.dumps(m) for m in [
        {"queue_name": "deferred", "arrival_time": 1000 - 50, "message_size": 2_000},
        {"queue_name": "deferred", "arrival_time": 1000 - 5_000, "message_size": 500},
        {"queue_name": "active", "arrival_time": 1000, "message_size": 20_000_000}])
    state = postqueue.summarize(out, now=1000)
    snapshot = metrics.Snapshot(queue_sizes=state.sizes, queue_ages=state.ages)
    registry = CollectorRegistry()
    registry.register(metrics.StoreCollector(snapshot, kumina=True))
    age = "postfix_showq_message_age_seconds"
    assert registry.get_sample_value(age + "_bucket", {"queue": "deferred", "le": "100.0"}) == 1
    assert registry.get_sample_value(age + "_bucket", {"queue": "deferred", "le": "10000.0"}) == 2
    assert registry.get_sample_value(age + "_count", {"queue": "deferred"}) == 2
    assert registry.get_sample_value(age + "_sum", {"queue": "deferred"}) == 5050
    size = "postfix_showq_message_size_bytes"
    assert registry.get_sample_value(size + "_bucket", {"queue": "deferred", "le": "1000.0"}) == 1
    assert registry.get_sample_value(size + "_bucket", {"queue": "active", "le": "1e+07"}) == 0
    assert registry.get_sample_value(size + "_bucket", {"queue": "active", "le": "1e+08"}) == 1
    plain = CollectorRegistry()
    plain.register(metrics.StoreCollector(snapshot))
    assert plain.get_sample_value(age + "_count", {"queue": "deferred"}) is None
