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


def command(cursor: str | None, unit: str | None, matches: list[str], directory: str | None = None,
            follow: bool = True) -> list[str]:
    cmd = ["journalctl", "-o", "json", "--no-pager"]
    if directory:
        cmd += ["--directory", directory]
    if follow:
        cmd.append("--follow")
    if cursor:
        cmd += ["--after-cursor", cursor]
    elif not directory:
        cmd += ["--since", "today"]  # a first start reads today's journal, not all history
    if unit:
        cmd += ["-u", unit]
    return cmd + list(matches)


class JournalReader:
    """Follows `journalctl -o json`; close() ends it (also from another thread)."""

    def __init__(self, cursor: str | None, unit: str | None, matches: list[str], directory: str | None = None) -> None:
        self.proc = subprocess.Popen(command(cursor, unit, matches, directory), stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """(line, cursor) per journal entry, until closed."""
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            line = to_log_line(entry)
            if line is not None:
                yield line, entry.get("__CURSOR", "")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
