"""The native parser's Python side: Arrow lines in, Arrow tables ev1 and ev_<family> out.

`_native.parse` does the whole per-line work in C (see _native.c); here its column buffers
become Arrow arrays without copying (host, instance, daemon, service and kind as dictionary
arrays: few distinct values, indexed per line), the columns every family shares are gathered
from ev1 with one `take`, and BSD local times move to UTC through DuckDB's zone rules (only
the distinct seconds of the batch are converted).
"""
from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from exporter.parser import _native
from exporter.parser.header import Clock, _years

KINDS = pa.array(_native.kinds(), pa.string())
_TYPES = {"s": pa.large_string(), "q": pa.int64(), "i": pa.int32(), "d": pa.float64(), "b": pa.uint8()}
# ev1's columns and the ones each ev_<family> starts with, in the order the SQL made them
EV1 = ("seq", "problem", "ts", "host", "pid", "instance", "daemon", "service", "body", "qid", "kind")
COMMON = ("seq", "ts", "host", "instance", "service", "daemon", "pid", "qid", "kind")
WITH_LINE = ("reject", "header_action", "not_parsed")  # families that keep the raw line


def _buffer(handed: tuple) -> pa.Buffer:
    """A buffer the C side handed over (address, size, owner): wrapped, not copied."""
    address, size, owner = handed
    return pa.foreign_buffer(address, size, base=owner)


def _array(n: int, col: tuple) -> pa.Array:
    _name, typ, nulls, validity, buf1, buf2 = col
    valid = None if validity is None else pa.py_buffer(validity)
    if typ == "s":
        return pa.Array.from_buffers(pa.large_string(), n, [valid, _buffer(buf1), _buffer(buf2)], nulls)
    if typ == "D":  # indices into the column's distinct values
        offsets, data, distinct = buf2
        values = pa.Array.from_buffers(pa.large_string(), distinct, [None, _buffer(offsets), _buffer(data)])
        indices = pa.Array.from_buffers(pa.int32(), n, [valid, _buffer(buf1)], nulls)
        return pa.DictionaryArray.from_arrays(indices, values)
    return pa.Array.from_buffers(_TYPES[typ], n, [valid, _buffer(buf1)], nulls)


def split(chunk: bytes | memoryview, max_line_bytes: int) -> pa.Array | None:
    """A chunk's lines (blank ones dropped) split in one native pass: the text without its
    newlines becomes the Arrow data buffer, UTF-8-validated by Arrow unless all ASCII. None
    when the chunk needs the per-line path (control bytes, CR, invalid UTF-8, long lines)."""
    out = _native.split(chunk, max_line_bytes)
    if out is None:
        return None
    data, offsets, n, ascii_only = out
    arr = pa.Array.from_buffers(pa.string(), n, [None, _buffer(offsets), _buffer(data)])
    if not ascii_only:
        try:
            arr.validate(full=True)  # UTF-8
        except pa.ArrowInvalid:
            return None
    return arr


def _line_buffers(text: pa.Array) -> tuple[pa.Buffer | bytes, np.ndarray]:
    """The lines' data buffer and int64 offsets into it (as the C side wants them)."""
    n = len(text)
    _, off_buf, data_buf = text.buffers()
    wide = pa.types.is_large_string(text.type)
    offsets = np.frombuffer(off_buf, np.int64 if wide else np.int32)[text.offset:text.offset + n + 1]
    return (data_buf if data_buf is not None else b""), offsets.astype(np.int64)


def years(text: pa.Array, clock: Clock, year: int | None) -> np.ndarray:
    """header.header_years without SQL: month and day of each line that starts with a month."""
    data, offsets = _line_buffers(text)
    mon_b, day_b = _native.months(data, offsets)
    mon = np.frombuffer(mon_b, np.int8).astype(np.float32)
    day = np.frombuffer(day_b, np.int8).astype(np.float32)
    mon[mon == 0] = np.nan
    day[day < 0] = np.nan
    return _years(mon, day, clock, year)


# tzdata's names for UTC itself (Etc/UTC and Etc/GMT and their links): nothing to convert
UTC_ZONES = frozenset({
    "UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu",
    "GMT", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "GMT0", "GMT+0", "GMT-0", "Etc/Greenwich", "Greenwich"})


def to_utc(con: duckdb.DuckDBPyConnection, local_us: np.ndarray, zone: str) -> np.ndarray:
    """Local wall-clock microseconds -> UTC, by DuckDB's `timezone()` (what the SQL parser used).
    Zones change their offset at a whole minute, so DuckDB converts each distinct minute's
    start (a batch's lines share a few hundred) and every time moves by its minute's offset."""
    if zone in UTC_ZONES or not len(local_us):
        return local_us
    minute = 60_000_000
    minutes = local_us // minute
    # a log's times come in runs of one minute: the distinct minutes are those of the runs
    # (a sort of every line's minute cost ~10 ms a batch)
    run = np.flatnonzero(np.r_[True, minutes[1:] != minutes[:-1]])
    starts, run_inverse = np.unique(minutes[run], return_inverse=True)
    inverse = np.repeat(run_inverse, np.diff(np.r_[run, len(minutes)]))
    starts *= minute
    con.register("pi_local_ts", pa.table({"t": pa.array(starts.astype("datetime64[us]"))}))
    try:
        # epoch of the TIMESTAMPTZ itself: a cast to TIMESTAMP would depend on the session's zone
        out = con.sql(f"SELECT epoch_us(timezone('{zone}', t)) FROM pi_local_ts").fetchnumpy()
    finally:
        con.unregister("pi_local_ts")
    offset = starts - np.asarray(next(iter(out.values())), np.int64)
    return local_us - offset[inverse]


def _rows_of(idx: pa.Array, rows: int, n: int):
    """The family's rows (indices into the batch's lines) as a function selecting them: a
    filter when they are in line order (it copies strings in runs, a take one by one)."""
    at = np.frombuffer(idx.buffers()[1], np.int32)[idx.offset:idx.offset + rows] \
        if rows and idx.null_count == 0 and idx.type == pa.int32() else None
    if at is None or not (rows < 2 or bool(np.all(at[1:] > at[:-1]))):
        return lambda data: data.take(idx)
    keep = np.zeros(n, bool)
    keep[at] = True
    mask = pa.array(keep)
    return lambda data: data.filter(mask)


def parse_tables(con: duckdb.DuckDBPyConnection, text: pa.Array, problem: pa.Array, first_seq: int,
                 years_: np.ndarray, zone: str, with_body: bool = True) -> tuple[pa.Table, dict[str, pa.Table], np.ndarray]:
    """Lines -> ev1 and the family tables as Arrow, plus the valid UTC times (int64 us, in line
    order) for the time-backwards count. ev1.body (what the SQL families read) is left out
    unless asked for: nothing after the parser reads it, and it is a copy of most of the batch."""
    n = len(text)
    data, offsets = _line_buffers(text)
    has_problem = np.asarray(problem.is_valid(), np.uint8) if problem.null_count != len(problem) \
        else np.zeros(n, np.uint8)
    out = _native.parse(data, offsets, has_problem, np.ascontiguousarray(years_, np.int16), with_body)
    rows, cols = out.pop("ev1")
    raw = {c[0]: _array(rows, c) for c in cols}
    ts_valid = np.asarray(raw["ts"].is_valid())
    ts = np.frombuffer(raw["ts"].buffers()[1], np.int64)[:n].copy()  # 0 where NULL
    if zone not in UTC_ZONES:
        local = ts_valid & (np.frombuffer(raw["iso"].buffers()[1], np.uint8)[:n] == 0)
        ts[local] = to_utc(con, ts[local], zone)
    ts_arr = pa.Array.from_buffers(pa.timestamp("us"), n, [raw["ts"].buffers()[0], pa.py_buffer(ts)],
                                   raw["ts"].null_count)
    # the kind's code as the index of a dictionary of names: no string per line to copy,
    # and the families' take and filter below move one byte per row
    codes = raw["kind"]
    kind = pa.DictionaryArray.from_arrays(pa.Array.from_buffers(pa.int8(), n, codes.buffers(), codes.null_count), KINDS)
    ev1 = pa.table({
        "seq": pa.array(np.arange(first_seq, first_seq + n, dtype=np.int64)),
        "problem": problem, "ts": ts_arr, "host": raw["host"], "pid": raw["pid"], "instance": raw["instance"],
        "daemon": raw["daemon"], "service": raw["service"], "body": raw["body"], "qid": raw["qid"], "kind": kind,
    })
    if not with_body:
        ev1 = ev1.drop_columns(["body"])
    common = ev1.select(list(COMMON))
    families: dict[str, pa.Table] = {}
    for family, (frows, fcols) in out.items():
        arrays = {c[0]: _array(frows, c) for c in fcols}
        pick = _rows_of(arrays.pop("row"), frows, n)
        table = pick(common)
        if family in WITH_LINE:
            table = table.append_column("line", pick(text))
        for name, arr in arrays.items():
            table = table.append_column(name, arr)
        if family == "not_parsed" and problem.null_count != len(problem):
            # a line flagged by the splitter: its reason is the splitter's word for it
            reason = pa.compute.coalesce(pick(problem), table.column("reason"))
            table = table.set_column(table.schema.get_field_index("reason"), "reason", reason)
        families[family] = table
    return ev1, families, np.where(ts_valid, ts, 0)[ts_valid]
