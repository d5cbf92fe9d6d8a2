"""The store: one DuckDB file; sources' positions commit with the rows they produced."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from exporter import reasons
from exporter.config import StoreConfig
from exporter.store import meta, records
from exporter.store.schema import RECORDS_TABLE, SCHEMA_VERSION, TABLES


class StoreError(Exception):
    """The store cannot be opened or used; the message says why."""


@dataclass
class SourceState:
    src_id: int
    name: str
    fingerprint: bytes
    offset: int
    lines: int
    clock_year: int | None
    clock_month: int | None


# The store file is attached under this name (and made the default catalog): only ATTACH
# takes a row group size.
CATALOG = "store"


@dataclass
class _Open:
    base: duckdb.DuckDBPyConnection   # the connection that attached the file; never handed out
    read_only: bool
    users: int


# A file can be attached once per process; every Store on it gets its own connection to the
# one database (as duckdb.connect(path) would share one instance).
_open: dict[str, _Open] = {}
_open_lock = threading.Lock()


def connect(path: Path | str, *, read_only: bool = False, threads: int = 2, memory_limit: str = "1GB",
            row_group_rows: int) -> duckdb.DuckDBPyConnection:
    """A connection to the store file, on its catalog; give it back with `disconnect`.
    `row_group_rows` (StoreConfig's) applies to a file attached for writing."""
    key = str(Path(path).resolve())
    with _open_lock:
        held = _open.get(key)
        if held is None:
            base = duckdb.connect(config={"threads": threads, "memory_limit": memory_limit})
            quoted = str(path).replace("'", "''")
            options = "READ_ONLY" if read_only else f"ROW_GROUP_SIZE {int(row_group_rows)}"
            try:
                base.execute(f"ATTACH '{quoted}' AS {CATALOG} ({options})")
            except duckdb.IOException as exc:
                base.close()
                raise StoreError(f"{path}: {exc}") from exc
            held = _open[key] = _Open(base, read_only, 0)
        elif held.read_only and not read_only:
            raise StoreError(f"{path}: already open read-only in this process")
        held.users += 1
        con = cursor(held.base)
    con.execute("SET TimeZone = 'UTC'")
    return con


def disconnect(path: Path | str, con: duckdb.DuckDBPyConnection) -> None:
    """Close a connection from `connect`; the file is detached when its last one closes."""
    key = str(Path(path).resolve())
    con.close()
    with _open_lock:
        held = _open.get(key)
        if held is not None:
            held.users -= 1
            if held.users <= 0:
                del _open[key]
                held.base.close()


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Another connection to the same database (for another thread), on the store: a new
    cursor starts on DuckDB's in-memory catalog, not on the attached file."""
    cur = con.cursor()
    cur.execute(f"USE {CATALOG}")
    return cur


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """A transaction on `con`: committed when the block ends, rolled back when it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


class Background:
    """Jobs on a connection and a thread of their own, one at a time, each in a transaction
    of its own: the pipeline hands a batch's raw lines, its attempts and its records refresh
    here so that they run beside the main thread's work. `start` hands a job over; `wait`
    returns once it has committed, and raises its error if it failed. Whoever starts a job
    decides when to wait: before committing what must follow it."""

    def __init__(self, con: duckdb.DuckDBPyConnection,
                 setup: Callable[[duckdb.DuckDBPyConnection], None] | None = None) -> None:
        self._cur = cursor(con)
        if setup is not None:
            setup(self._cur)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def run(self, job: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        """The job now, on this thread."""
        with transaction(self._cur):
            job(self._cur)

    def start(self, job: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        self.wait()

        def work() -> None:
            try:
                self.run(job)
            except BaseException as exc:  # raised to the pipeline by wait()
                self._error = exc

        self._thread = threading.Thread(target=work, name="store-background", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._cur.close()


class Store:
    def __init__(self, config: StoreConfig, *, read_only: bool = False) -> None:
        self.config = config
        path = Path(config.path)
        if read_only and not path.exists():
            raise StoreError(f"{path}: no such store (ingest a log first)")
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.con = connect(path, read_only=read_only, threads=config.threads, memory_limit=config.memory_limit,
                           row_group_rows=config.row_group_rows)
        if read_only:
            version = self.meta("schema_version")
            if version is not None and int(version) < SCHEMA_VERSION:
                raise StoreError(f"{path}: store format {version} predates this program; open it once with "
                                 "`postfix-insights ingest` or `serve` (not read-only) to upgrade it")
        else:
            # Checkpoint (fold the WAL into the file) every few batches, not after each: one per
            # batch cost more than the WAL writes it saves (BENCHMARKS.md), and the WAL already
            # makes each committed batch durable.
            self.con.execute(f"SET checkpoint_threshold = '{config.checkpoint_mb}MB'")
            # Each batch deletes a few rows scattered over the big tables (the records and open
            # instances it rewrites). Vacuuming them at a checkpoint rewrites whole row groups, a
            # cost that grows with the store (checkpoints took twice as long at 5M lines as at
            # 1M); the holes are ~1% of the rows, and a row group whose rows are all deleted
            # (what `prune` leaves behind) is dropped all the same.
            self.con.execute("SET max_vacuum_tasks = 0")
            reasons.install(self.con)  # the records' reason column
            self._migrate()

    def close(self) -> None:
        disconnect(self.config.path, self.con)

    def _migrate(self) -> None:
        self.con.execute(TABLES)
        version = self.meta("schema_version")
        if version is not None and int(version) > SCHEMA_VERSION:
            raise StoreError(f"store schema {version} is newer than this program ({SCHEMA_VERSION})")
        if version is not None and int(version) < SCHEMA_VERSION:
            # delivery_records is derived from the facts: rebuilt in its new shape (before
            # version 4, a recipients table held each recipient's status; now the attempts do)
            with self.transaction():
                kind = self.con.execute("SELECT table_type FROM information_schema.tables "
                                        "WHERE table_name = 'delivery_records'").fetchall()
                if kind:
                    self.con.execute(f"DROP {'VIEW' if kind[0][0] == 'VIEW' else 'TABLE'} delivery_records")
                self.con.execute(RECORDS_TABLE)
                records.rebuild(self.con)
                self.con.execute("DROP TABLE IF EXISTS recipients")
                self.set_meta("schema_version", str(SCHEMA_VERSION))
        self.con.execute(RECORDS_TABLE)
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        if self.meta("records_seq") is None:  # a new store
            self.set_meta("records_seq", str(self.counter("next_seq")))

    # -- small key/value state -------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        return meta.get(self.con, key)

    def set_meta(self, key: str, value: str) -> None:
        meta.put(self.con, key, value)

    def counter(self, key: str) -> int:
        return meta.counter(self.con, key)

    def transaction(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return transaction(self.con)

    # -- sources ---------------------------------------------------------------------------
    def find_source(self, fingerprint: bytes) -> SourceState | None:
        """The source whose first bytes match: either is a prefix of the other (a log that grew)."""
        if not fingerprint:
            return None
        rows = self.con.execute(
            """SELECT src_id, name, fingerprint, offset_bytes, lines, clock_year, clock_month FROM sources
               ORDER BY updated_at DESC""").fetchall()
        matches = [r for r in rows if r[2].startswith(fingerprint) or fingerprint.startswith(r[2])]
        matches.sort(key=lambda r: -len(r[2]))  # the longest known prefix is the surest match
        return SourceState(*matches[0]) if matches else None

    def new_source(self, name: str, fingerprint: bytes) -> SourceState:
        src_id = self.counter("next_src_id") + 1
        self.set_meta("next_src_id", str(src_id))
        self.con.execute("INSERT INTO sources VALUES (?, ?, ?, 0, 0, NULL, NULL, ?)",
                         [src_id, name, fingerprint, datetime.now(timezone.utc).replace(tzinfo=None)])
        return SourceState(src_id, name, fingerprint, 0, 0, None, None)

    def save_source(self, state: SourceState) -> None:
        self.con.execute(
            """UPDATE sources SET name = ?, fingerprint = ?, offset_bytes = ?, lines = ?, clock_year = ?,
                      clock_month = ?, updated_at = ? WHERE src_id = ?""",
            [state.name, state.fingerprint, state.offset, state.lines, state.clock_year, state.clock_month,
             datetime.now(timezone.utc).replace(tzinfo=None), state.src_id])
