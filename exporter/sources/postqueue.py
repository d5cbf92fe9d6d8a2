"""Queue sizes from `postqueue -j` (one JSON object per queued message)."""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field

QUEUES = ("incoming", "active", "deferred", "hold", "maildrop")


@dataclass
class QueueState:
    ok: bool
    problem: str = ""                       # why not, when not ok: not_found, permission_denied, failed, timeout
    messages: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    oldest_age_seconds: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, list[float]] = field(default_factory=dict)   # per message, for histograms
    ages: dict[str, list[float]] = field(default_factory=dict)


def summarize(output: str, now: float) -> QueueState:
    state = QueueState(ok=True, messages=dict.fromkeys(QUEUES, 0), bytes=dict.fromkeys(QUEUES, 0),
                       oldest_age_seconds=dict.fromkeys(QUEUES, 0.0))
    for line in output.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        queue = str(item.get("queue_name", "unknown"))
        state.messages[queue] = state.messages.get(queue, 0) + 1
        state.bytes[queue] = state.bytes.get(queue, 0) + int(item.get("message_size") or 0)
        age = max(0.0, now - float(item.get("arrival_time") or now))
        state.oldest_age_seconds[queue] = max(state.oldest_age_seconds.get(queue, 0.0), age)
        state.sizes.setdefault(queue, []).append(float(item.get("message_size") or 0))
        state.ages.setdefault(queue, []).append(age)
    return state


def read(command: list[str], timeout_seconds: float = 10) -> QueueState:
    try:
        proc = subprocess.run(command, capture_output=True, timeout=timeout_seconds, text=True)
    except FileNotFoundError:
        return QueueState(ok=False, problem="not_found")
    except PermissionError:
        return QueueState(ok=False, problem="permission_denied")
    except subprocess.TimeoutExpired:
        return QueueState(ok=False, problem="timeout")
    if proc.returncode != 0:
        err = proc.stderr.lower()
        problem = "permission_denied" if "permission denied" in err else (
            "not_running" if "not running" in err or "connect" in err else "failed")
        return QueueState(ok=False, problem=problem)
    return summarize(proc.stdout, time.time())
