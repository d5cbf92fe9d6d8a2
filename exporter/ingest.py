"""The one place that wires the batch pipeline: source -> parser -> correlator -> store.

Each batch of one source is one transaction: the rows it produced, the correlator's open
state and the source's new position commit together or not at all. A file's batches write
their raw lines, delivery attempts and delivery records from transactions of their own,
beside the main thread's work (_Side says how nothing is lost or duplicated all the same).
"""
from __future__ import annotations

import contextlib
import os

# Nothing here uses BLAS: OpenBLAS's worker threads (started with numpy, imported below) would
# only spin beside the two threads that do the work on a 2-core machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import queue
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TypeVar

import duckdb
import pyarrow as pa

from exporter import correlator, parser, reasons
from exporter.config import CorrelatorConfig, ParserConfig, ReaderConfig
from exporter.parser.header import Clock
from exporter.sources.files import LogInput, chunks, expand, open_log
from exporter.sources.lines import Lines, split_lines
from exporter.store import db, records
from exporter.store.db import SourceState, Store

T = TypeVar("T")


@dataclass
class IngestStats:
    files: int = 0
    skipped_files: int = 0       # already fully ingested
    bytes: int = 0
    lines: int = 0
    messages: int = 0
    evicted: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchInfo:
    source: str
    lines: int
    anomalies: dict[str, int]
    evicted: dict[str, int]


def lines_from_texts(texts: list[str], max_line_bytes: int) -> Lines:
    """Pushed lines as the splitter would give them (too long or binary ones flagged)."""
    return split_lines("\n".join(t.replace("\n", " ") for t in texts).encode("utf-8", "backslashreplace"),
                       max_line_bytes)


@dataclass
class Pipeline:
    store: Store
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    parser_config: ParserConfig = field(default_factory=ParserConfig)
    correlator_config: CorrelatorConfig = field(default_factory=CorrelatorConfig)
    # called inside each batch's transaction, after the correlator, before its temp tables go
    batch_hooks: list[Callable[[duckdb.DuckDBPyConnection, BatchInfo], None]] = field(default_factory=list)
    _clocks: dict[str, Clock] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Arrow's buffers from malloc rather than mimalloc: a batch's buffers reuse the heap
        # memory the last one freed (the native module fixes glibc's mmap threshold), and
        # peak RSS is lower
        pa.set_memory_pool(pa.system_memory_pool())
        parser.install_macros(self.store.con)
        _leave_room_for_batches(self.store, self.reader.batch_bytes)
        with self.store.transaction() as con:  # records a crash left behind the facts
            records.refresh(con)

    def ingest_files(self, names: list[str], progress: Callable[[int], None] | None = None) -> IngestStats:
        """Ingest files (and '-' for stdin) in chronological order; each resumes where it left off."""
        stats = IngestStats()
        for name in expand(names):
            log = open_log(name)
            try:
                self.ingest_stream(log, stats, progress)
            finally:
                log.close()
        return stats

    def ingest_stream(self, log: LogInput, stats: IngestStats,
                      progress: Callable[[int], None] | None = None, final: bool = True,
                      stop: threading.Event | None = None) -> int:
        """Read a log from its stored position to its end (a followed file: `final=False`,
        which leaves a line still being written for the next read). When `stop` is set, it
        returns after the batch in hand has committed; the next read resumes there.
        Returns the source's position afterwards (bytes of decompressed content)."""
        store = self.store
        state = store.find_source(log.fingerprint)
        stats.files += 1
        if state is None:
            with store.transaction():
                state = store.new_source(log.name, log.fingerprint)
        clock = Clock(anchor=log.mtime, year=state.clock_year, month=state.clock_month)
        consumed = False
        # the read-ahead thread reads, splits and parses the next batch and cuts it into
        # segments (correlator.prepare) while this one is correlated and committed; its
        # cursor only converts BSD local times to UTC
        cursor = db.cursor(store.con)
        batches = self._parsed(chunks(log, state.offset, self.reader.batch_bytes, final), clock, cursor)
        side = _Side({table: db.Background(store.con) for table in correlator.SIDE_TABLES},
                     db.Background(store.con, reasons.install))
        store.con.execute(f"SET threads = {int(store.config.ingest_threads)}")
        try:
            for size, parsed, segments, end_offset in _read_ahead(batches):
                consumed = True
                self._ingest_chunk(size, parsed, segments, end_offset, state, log, stats, side)
                if progress:
                    progress(size)
                if stop is not None and stop.is_set():
                    break
        finally:
            cursor.close()
            side.close()  # the last batch's records are in when this returns
            store.con.execute(f"SET threads = {int(store.config.threads)}")
        if not consumed:
            stats.skipped_files += 1
        return state.offset

    def _parsed(self, raw: Iterator[tuple[memoryview, int]], clock: Clock,
                cursor: duckdb.DuckDBPyConnection
                ) -> Iterator[tuple[int, parser.Parsed, correlator.Segments | None, int]]:
        """(bytes, parsed batch, its segments, end offset) per chunk; the raw chunk is let go
        as soon as it is split, not kept alive beside its parsed form."""
        first = True  # nothing runs beside the first batch: it is parsed on two threads
        for chunk, end_offset in raw:
            size = len(chunk)
            lines = split_lines(chunk, self.reader.max_line_bytes)
            del chunk
            parsed = parser.prepare(lines, clock, self.parser_config, cursor, halves=first)
            first = False
            yield size, parsed, self._segments(parsed), end_offset

    def _segments(self, parsed: parser.Parsed) -> correlator.Segments | None:
        """The correlator's work that needs only the batch (see correlator.Segments)."""
        if not len(parsed.text):
            return None
        return correlator.prepare(parsed.ev1, parsed.families, self.correlator_config)

    def _ingest_chunk(self, size: int, parsed: parser.Parsed, segments: correlator.Segments | None,
                      end_offset: int, state: SourceState, log: LogInput, stats: IngestStats,
                      side: _Side) -> None:
        store = self.store
        with store.transaction() as con:
            n = self._ingest_batch(con, parsed, segments, log.name, stats, side)
            state.offset = end_offset
            state.lines += n
            state.name = log.name
            if len(state.fingerprint) < len(log.fingerprint):
                state.fingerprint = log.fingerprint
            state.clock_year, state.clock_month = parsed.clock  # as of this batch, not the read-ahead's
            store.save_source(state)
            side.records.wait()  # the previous batch's records commit first
            side.wait()  # this batch's side rows too: a crash between leaves them past next_seq
        side.records.start(records.refresh)
        stats.lines += n
        stats.bytes += size

    def ingest_lines(self, texts: list[str], source: str, stats: IngestStats,
                     meta: dict[str, str] | None = None) -> None:
        """Lines pushed to us (syslog, Loki, journald): one transaction, with `meta` keys
        (such as a journald cursor) saved in it."""
        clock = self._clocks.setdefault(source, Clock(anchor=datetime.now(timezone.utc)))
        clock.anchor = datetime.now(timezone.utc)
        lines = lines_from_texts(texts, self.reader.max_line_bytes)
        with self.store.transaction() as con:
            parsed = parser.prepare(lines, clock, self.parser_config, con)
            n = self._ingest_batch(con, parsed, self._segments(parsed), source, stats, None)
            for key, value in (meta or {}).items():
                self.store.set_meta(key, value)
        stats.lines += n

    def _ingest_batch(self, con: duckdb.DuckDBPyConnection, parsed: parser.Parsed,
                      segments: correlator.Segments | None, source: str, stats: IngestStats,
                      side: _Side | None) -> int:
        """One batch into the store, in `con`'s transaction. With `side`, its raw lines and
        attempts are written beside it and its delivery records after it (see _Side);
        without, in it."""
        store = self.store
        n = len(parsed.text)
        if not n or segments is None:
            return 0
        first_seq = store.counter("next_seq")
        # rows a failed batch's side transactions left (see _Side): the seq numbers are reused
        for table in correlator.SIDE_TABLES:
            con.execute(f"DELETE FROM {table} WHERE seq >= ?", [first_seq])
        backwards, tables = parser.load(con, parsed, first_seq, parser.SQL_FAMILIES)
        next_msg_id, result = correlator.correlate(
            con, self.correlator_config, store.counter("next_msg_id") or 1, source, tables, segments, first_seq,
            None if side is None else side.write)
        store.set_meta("next_msg_id", str(next_msg_id))
        store.set_meta("next_seq", str(first_seq + n))
        if side is None:
            records.refresh(con)
        day = datetime.now(timezone.utc).date()
        anomalies = {"time_backwards": backwards, "invalid_utf8": parsed.invalid_utf8}
        for name, count in anomalies.items():
            if count:
                con.execute("INSERT INTO line_counts VALUES (?, NULL, 'anomaly', ?, ?)", [day, name, count])
        info = BatchInfo(source, n, anomalies, result.evicted)
        for hook in self.batch_hooks:
            hook(con, info)
        parser.drop_batch_tables(con)
        stats.messages += result.messages
        for k, v in result.evicted.items():
            stats.evicted[k] = stats.evicted.get(k, 0) + v
        return n


@dataclass
class _Side:
    """A read file's batch writes part of its rows from transactions of their own, on threads
    of their own, beside the main thread's work: the second core has room for them.
    - Its rows of the correlator's SIDE_TABLES (raw lines, the largest of its writes, and
      delivery attempts), as soon as they are known. They commit just before the batch:
      rows a crash (or a failed batch) leaves behind are past next_seq, and the next batch
      drops them. Nothing in the batch's own transaction reads them back (it would not see
      them).
    - Its delivery records, after it has committed, while the next batch is correlated; the
      next batch commits after them. records_seq commits with them: a refresh a crash cut
      short is redone when the store is next opened for writing."""
    writers: dict[str, db.Background]
    records: db.Background

    def write(self, table: str, rows: pa.Table) -> None:
        self.writers[table].start(lambda con: correlator.write_rows(con, table, rows))

    def wait(self) -> None:
        for writer in self.writers.values():
            writer.wait()

    def close(self) -> None:
        with contextlib.ExitStack() as stack:  # every writer closed, even when one raises
            for writer in (*self.writers.values(), self.records):
                stack.callback(writer.close)


# Memory of the batches in flight outside DuckDB (one correlated, one parsed ahead, one being
# read: each its raw bytes, its lines and its parsed columns), as a multiple of the batch size
_BATCHES_IN_FLIGHT = 10
_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}


def _leave_room_for_batches(store: Store, batch_bytes: int) -> None:
    """The batches in flight live outside DuckDB's memory_limit: lower DuckDB's share so that
    the process as a whole stays near the configured limit (never below half of it)."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]+)\s*", store.config.memory_limit)
    if store.con is None or not m or m[2].upper() not in _UNITS:
        return  # a percentage or a form we do not know: leave it to DuckDB
    limit = float(m[1]) * _UNITS[m[2].upper()]
    share = max(limit - _BATCHES_IN_FLIGHT * batch_bytes, limit / 2)
    store.con.execute(f"SET memory_limit = '{int(share) >> 20}MiB'")


# How much nicer the read-ahead thread is than the rest: its batch is needed only once the
# one in hand has committed, while the main thread and the writers it waits for are needed
# now. With more threads ready to run than cores, the scheduler then gives the read-ahead
# what they leave: on 5M lines ~5% less wall and CPU time (BENCHMARKS.md). Raising one's own
# nice value needs no privilege.
_READ_AHEAD_NICE = 10


def _yield_to_the_consumer() -> None:
    """Lower the calling thread's priority (on Linux a thread has a nice value of its own)."""
    if sys.platform.startswith("linux"):
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + _READ_AHEAD_NICE))
        except OSError:
            pass  # a priority that cannot be set changes only the speed


def _read_ahead(items: Iterator[T]) -> Iterator[T]:
    """Iterate `items` one step ahead in a thread: the next batch is read, split, parsed and
    segmented while this one is correlated and stored (DuckDB, numpy, the native parser and
    file reads release the GIL). Only one batch is made ahead: the next is started when the
    consumer takes the one waiting, so at most two parsed batches are in memory. Errors surface in
    order, after the batches before them; stopping early stops the thread (one blocked
    reading a pipe is left behind, as a daemon, rather than waited for)."""
    slot: queue.Queue = queue.Queue(maxsize=1)
    taken = threading.Semaphore(1)  # released each time the consumer takes an item
    stop = threading.Event()
    done = object()

    def offer(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                slot.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        _yield_to_the_consumer()
        try:
            while True:
                while not taken.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                item = next(items, done)
                if item is done:
                    break
                if not offer((item, None)):
                    return
            offer((done, None))
        except BaseException as exc:  # handed to the consumer, raised there
            offer((done, exc))

    worker = threading.Thread(target=produce, name="read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, exc = slot.get()
            taken.release()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=2.0)
