"""journald: `journalctl -o json --follow --after-cursor` -> lines in the parser's format.

The cursor of the last entry of a batch is stored with the batch (meta key
`journald_cursor`), so a restart resumes after exactly that entry.
"""
from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone


def to_log_line(entry: dict) -> str | None:
    """One journal entry (journalctl -o json) as `TIME HOST TAG[PID]: MESSAGE`; None without a message."""
    message = entry.get("MESSAGE")
    if isinstance(message, list):  # journalctl gives non-UTF-8 messages as a byte array
        message = bytes(message).decode("utf-8", "backslashreplace")
    if not isinstance(message, str):
        return None
    try:
        ts = datetime.fromtimestamp(int(entry["__REALTIME_TIMESTAMP"]) / 1e6, timezone.utc).isoformat()
    except (KeyError, ValueError, TypeError):
        ts = datetime.now(timezone.utc).isoformat()
    host = entry.get("_HOSTNAME") or "localhost"
    tag = entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM") or "unknown"
    pid = entry.get("SYSLOG_PID") or entry.get("_PID")
    if pid:
        tag = f"{tag}[{pid}]"
    return f"{ts} {host} {tag}: {message}"


def command(cursor: str | None, unit: str | None, matches: list[str], follow: bool = True) -> list[str]:
    cmd = ["journalctl", "-o", "json", "--no-pager"]
    if follow:
        cmd.append("--follow")
    if cursor:
        cmd += ["--after-cursor", cursor]
    else:
        cmd += ["--since", "today"]
    if unit:
        cmd += ["-u", unit]
    return cmd + list(matches)


def entries(cursor: str | None, unit: str | None, matches: list[str]) -> Iterator[tuple[str, str]]:
    """(line, cursor) per journal entry, following until the process is ended."""
    proc = subprocess.Popen(command(cursor, unit, matches), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            line = to_log_line(entry)
            if line is not None:
                yield line, entry.get("__CURSOR", "")
    finally:
        proc.terminate()
        proc.wait(timeout=5)
