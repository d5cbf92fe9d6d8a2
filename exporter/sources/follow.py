"""Follow log files by glob across rotation, one poll at a time.

A file is known by the first bytes of its content (its fingerprint), not by its name, so
every rotation style works the same way:
- rename + create: `mail.log.1` keeps its fingerprint and is read to its end; the new
  `mail.log` has new first bytes and is a new source read from its start;
- copytruncate, delete + recreate: the new content has a new fingerprint;
- a file that appears later is read when the glob first matches it;
- compressed rotated files match the source they were compressed from and only their
  unread tail (usually nothing) is read.
A file whose size and mtime have not changed since it was last read is not opened again.
Positions live in the store and commit with the rows they produced (see ingest.py).
"""
from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.sources.files import FINGERPRINT_BYTES, LogInput, SourceError, chronological, open_log


@dataclass
class FollowStats:
    errors: dict[str, str] = field(default_factory=dict)   # path -> last error, for /healthz
    lag_bytes: dict[str, int] = field(default_factory=dict)  # path -> bytes not yet read


@dataclass
class Follower:
    patterns: list[str]
    # reads one opened log from its stored position to its end; returns bytes left unread
    read: Callable[[LogInput], int]
    stats: FollowStats = field(default_factory=FollowStats)
    _read_as: dict[str, tuple[float, int]] = field(default_factory=dict)  # path -> (mtime, size) when last read

    def paths(self) -> list[str]:
        found: set[str] = set()
        for pattern in self.patterns:
            found.update(p for p in glob.glob(pattern) if os.path.isfile(p))
        return chronological(sorted(found))

    def poll(self) -> int:
        """Read whatever is new in every matching file, oldest rotation first. Returns files read."""
        touched = 0
        for path in self.paths():
            try:
                st = os.stat(path)
            except OSError:
                continue  # rotated away between glob and stat
            key = (st.st_mtime, st.st_size)
            if self._read_as.get(path) == key or st.st_size == 0:
                continue
            try:
                log = open_log(path)
            except SourceError as exc:
                self.stats.errors[path] = str(exc)
                continue
            try:
                if len(log.head) < FINGERPRINT_BYTES and b"\n" not in log.head:
                    continue  # not one whole line yet: too little to know which file this is
                self.stats.lag_bytes[path] = self.read(log)
                self.stats.errors.pop(path, None)
                touched += 1
                self._read_as[path] = key
            except SourceError as exc:
                self.stats.errors[path] = str(exc)
            finally:
                log.close()
        return touched
