"""The ingest worker of `serve`: the one thread that writes the store.

It follows files, takes lines pushed over HTTP (Loki) or syslog from a bounded queue, and
reads journald; every batch goes through the same Pipeline as `ingest`, so positions,
records and metric totals commit together. Readers (HTTP API) use their own cursors.
"""
from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import timezone

import duckdb

from exporter import metrics
from exporter.ingest import BatchInfo, IngestStats, Pipeline
from exporter.settings import ServeConfig
from exporter.sources import journald, postqueue
from exporter.sources.files import LogInput
from exporter.sources.follow import Follower
from exporter.store import archive
from exporter.store.db import Store

log = logging.getLogger(__name__)
_PUSH_BATCH_LINES = 50_000  # a pushed batch this big is ingested without waiting out the interval
_RETENTION_EVERY_SECONDS = 3600  # [store] retention_days is applied at start, then this often


@dataclass
class Pushed:
    source: str                 # e.g. "loki", "syslog-udp", "journald"
    lines: list[str]
    meta: dict[str, str] = field(default_factory=dict)  # saved in the same transaction (journald cursor)
    done: Future = field(default_factory=Future)         # resolved after the commit that holds the lines


class QueueFull(Exception):
    """The intake queue is full; the pusher should retry later (HTTP 429)."""


@dataclass
class Health:
    started: float = field(default_factory=time.time)
    last_commit: float | None = None
    last_error: str | None = None
    source_lag_seconds: dict[str, float] = field(default_factory=dict)
    source_lag_bytes: dict[str, int] = field(default_factory=dict)
    queued_lines: int = 0
    batches: int = 0


class IngestWorker(threading.Thread):
    def __init__(self, config: ServeConfig, snapshot: metrics.Snapshot) -> None:
        super().__init__(name="ingest", daemon=True)
        self.config = config
        self.snapshot = snapshot
        self.store = Store(config.store)
        metrics.install(self.store.con)
        self.pipeline = Pipeline(self.store, config.reader, config.parser, config.correlator,
                                 batch_hooks=[self._record_metrics])
        self.snapshot.load(self.store.con)
        self.health = Health()
        self.follower = Follower(config.files.logs, read=self._read_file)
        self._queue: queue.Queue[Pushed] = queue.Queue()
        self._queued = 0
        self._queued_lock = threading.Lock()
        self._stopping = threading.Event()
        self._journal_thread: threading.Thread | None = None
        self._journal_cursor = self.store.meta("journald_cursor")
        self._journal_reader: journald.JournalReader | None = None
        self.stats = IngestStats()
        self._next_queue_read = 0.0
        self._next_retention = 0.0

    # -- producers (any thread) ------------------------------------------------------------
    def push(self, source: str, lines: list[str], meta: dict[str, str] | None = None) -> Future:
        with self._queued_lock:
            if self._queued + len(lines) > self.config.intake.max_queued_lines:
                raise QueueFull(f"{self._queued} lines are waiting for ingest")
            self._queued += len(lines)
        item = Pushed(source, lines, meta or {})
        self._queue.put(item)
        return item.done

    def stop(self) -> None:
        self._stopping.set()
        if self._journal_reader is not None:
            self._journal_reader.close()

    # -- the writer thread -------------------------------------------------------------------
    def run(self) -> None:
        if self.config.journald.enabled:
            self._journal_thread = threading.Thread(target=self._journal, name="journald", daemon=True)
            self._journal_thread.start()
        try:
            while not self._stopping.is_set():
                self._apply_retention()
                worked = self._drain_pushed()
                if not self._stopping.is_set():
                    worked += self.follower.poll()
                self._publish_gauges()
                if not worked:
                    self._stopping.wait(self.config.files.poll_interval_seconds)
            self._drain_pushed()  # finish what was accepted, then commit and stop
        except Exception as exc:  # noqa: BLE001 - reported on /healthz and in the log, never silent
            log.exception("ingest worker stopped")
            self.health.last_error = f"{type(exc).__name__}: {exc}"
            self._fail_pending(exc)
        finally:
            self.store.close()

    def _apply_retention(self) -> None:
        """[store] retention_days: what is older goes, in this (the writing) thread."""
        days = self.config.store.retention_days
        if days is None or time.monotonic() < self._next_retention:
            return
        self._next_retention = time.monotonic() + _RETENTION_EVERY_SECONDS
        removed = archive.prune(self.store, days)
        if removed:
            log.info("retention: dropped %d message instances older than %g days", removed, days)

    def _read_file(self, log_input: LogInput) -> int:
        """Follower callback: returns the bytes still unread (0 for compressed files, whose
        decompressed size is not known without reading them)."""
        before = self.stats.lines
        offset = self.pipeline.ingest_stream(log_input, self.stats, final=False, stop=self._stopping)
        if self.stats.lines != before:
            self._after_commit()
        if log_input.compressed:
            return 0
        try:
            return max(0, os.path.getsize(log_input.name) - offset)
        except OSError:  # rotated away since it was opened: its successor is read next poll
            return 0

    def _drain_pushed(self) -> int:
        """Wait up to batch_interval_seconds for pushed lines, then gather what arrives within
        that interval (or until a batch is big enough) into one transaction per source."""
        interval = self.config.intake.batch_interval_seconds
        try:
            items = [self._queue.get(timeout=interval)]
        except queue.Empty:
            return 0
        deadline = time.monotonic() + interval
        size = len(items[0].lines)
        while size < _PUSH_BATCH_LINES:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            items.append(item)
            size += len(item.lines)
        by_source: dict[str, list[Pushed]] = {}
        for item in items:
            by_source.setdefault(item.source, []).append(item)
        for source, group in by_source.items():
            lines = [line for item in group for line in item.lines]
            meta = {k: v for item in group for k, v in item.meta.items()}
            try:
                self.pipeline.ingest_lines(lines, source, self.stats, meta)
            except Exception as exc:
                for item in group:
                    item.done.set_exception(exc)
                raise
            finally:
                with self._queued_lock:
                    self._queued -= len(lines)
            for item in group:
                item.done.set_result(len(item.lines))
        self._after_commit()
        return len(items)

    def _fail_pending(self, exc: Exception) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            item.done.set_exception(exc)

    def _journal(self) -> None:
        """Reads journald in its own thread. Each entry goes to the queue with its cursor; the
        writer batches them and commits the last cursor with the lines (exactly once)."""
        cfg = self.config.journald
        self._journal_reader = journald.JournalReader(self._journal_cursor, cfg.unit or None, cfg.matches,
                                                      cfg.directory)
        for line, cursor in self._journal_reader:
            while not self._stopping.is_set():
                try:
                    self.push("journald", [line], {"journald_cursor": cursor})
                    break
                except QueueFull:
                    time.sleep(0.2)  # back-pressure: journald keeps the entries, we read them later
            if self._stopping.is_set():
                return

    # -- metrics -------------------------------------------------------------------------------
    def _record_metrics(self, con: duckdb.DuckDBPyConnection, info: BatchInfo) -> None:
        """Inside the batch's transaction: metric totals commit with the rows they count."""
        metrics.record_batch(con, self.config.metrics.top_domains)
        for reason, n in info.evicted.items():
            metrics.add(con, "evictions_total", {"reason": reason}, n)
        for name, n in info.anomalies.items():
            metrics.add(con, "anomalies_total", {"anomaly": name}, n)
        metrics.add(con, "lines_read_total", {"source": _source_label(info.source)}, info.lines)
        newest = con.execute("SELECT max(ts) FROM ev1").fetchall()[0][0]
        if newest is not None:
            lag = time.time() - newest.replace(tzinfo=timezone.utc).timestamp()
            self.health.source_lag_seconds[_source_label(info.source)] = round(max(lag, 0.0), 3)

    def _after_commit(self) -> None:
        self.health.last_commit = time.time()
        self.health.batches += 1
        self.snapshot.load(self.store.con)

    def _publish_queue(self) -> None:
        """Queue gauges from `postqueue -j`, at most every postqueue_interval_seconds; when it
        cannot run, a gauge says why instead of silently showing empty queues."""
        if time.monotonic() < self._next_queue_read:
            return
        self._next_queue_read = time.monotonic() + self.config.metrics.postqueue_interval_seconds
        state = postqueue.read(self.config.metrics.postqueue_command)
        self.snapshot.set_gauge("postqueue_up", "1 when `postqueue -j` could be read, else 0 with the reason as label.",
                                {(("reason", state.problem or "ok"),): 1.0 if state.ok else 0.0})
        if state.ok:
            self.snapshot.set_gauge("queue_messages", "Messages in each Postfix queue.",
                                    {(("queue", q),): n for q, n in state.messages.items()})
            self.snapshot.set_gauge("queue_bytes", "Bytes of the messages in each Postfix queue.",
                                    {(("queue", q),): n for q, n in state.bytes.items()})
            self.snapshot.set_gauge("queue_oldest_message_age_seconds", "Age of the oldest message in each queue.",
                                    {(("queue", q),): a for q, a in state.oldest_age_seconds.items()})
            with self.snapshot.lock:
                self.snapshot.queue_sizes, self.snapshot.queue_ages = state.sizes, state.ages

    def _publish_gauges(self) -> None:
        self._publish_queue()
        with self._queued_lock:
            self.health.queued_lines = self._queued
        self.health.source_lag_bytes = dict(self.follower.stats.lag_bytes)
        open_ids = self.store.con.execute("SELECT count(*) FROM messages WHERE open").fetchall()[0][0]
        self.snapshot.set_gauge("open_queue_ids", "Message instances the correlator holds open.", {(): open_ids})
        self.snapshot.set_gauge("intake_queued_lines", "Pushed lines waiting for ingest.",
                                {(): self.health.queued_lines})
        if self.health.last_commit:
            self.snapshot.set_gauge("last_commit_timestamp_seconds", "Time of the last committed batch.",
                                    {(): self.health.last_commit})
        self.snapshot.set_gauge("ingest_lag_seconds", "Age of the newest line of the last batch, per source.",
                                {(("source", k),): v for k, v in self.health.source_lag_seconds.items()})


def _source_label(source: str) -> str:
    """Files by their name without rotation suffix (bounded cardinality); intakes as they are."""
    name = os.path.basename(source)
    return re.sub(r"(\.\d+)?(\.gz)?$|-\d{8,10}(\.gz)?$", "", name) or source
