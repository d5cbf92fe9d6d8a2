"""Queue gauges from `postqueue -j`, and a clear reason when it cannot run."""
from __future__ import annotations

import json

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
