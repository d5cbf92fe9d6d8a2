"""Parser stage: Arrow lines -> the temp tables ev1 and ev_<family> (see body.py for their columns).

`parse` runs the native single-pass parser (native.py, _native.c); `parse_sql` is the SQL it
reproduces, kept as the reference the tests compare it with."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from exporter.config import ParserConfig
from exporter.parser import native
from exporter.parser.body import (
    MACROS,
    MESSAGE_KINDS,
    SKIPPED_KINDS,
    parse_bodies,
)
from exporter.parser.header import (
    Clock,
    count_backwards,
    header_sql,
    header_years,
    local_zone_name,
)

if TYPE_CHECKING:  # the splitter (sources.lines) calls the native module: no import back at run time
    from exporter.sources.lines import Lines

__all__ = [
    "MESSAGE_KINDS",
    "SKIPPED_KINDS",
    "SQL_FAMILIES",
    "Clock",
    "Parsed",
    "drop_batch_tables",
    "install_macros",
    "load",
    "parse",
    "parse_sql",
    "prepare",
]


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(MACROS)


@dataclass(frozen=True)
class Parsed:
    """One batch parsed, not yet in the store: its seq numbers count from 0 until `load`."""
    ev1: pa.Table
    families: dict[str, pa.Table]
    text: pa.Array
    backwards: int                  # lines that went back in time (counted, still parsed)
    invalid_utf8: int               # lines whose bytes were not UTF-8 (still parsed)
    clock: tuple[int | None, int | None]  # the source clock's (year, month) after this batch


def prepare(lines: Lines, clock: Clock, config: ParserConfig, con: duckdb.DuckDBPyConnection,
            with_body: bool = False, halves: bool = False) -> Parsed:
    """Parse a batch without touching the store, so that it can run in the read-ahead thread
    while the previous batch is correlated (`con`, a cursor of its own, only converts zones).
    ev1.body is left out unless asked for (see native.parse_tables). `halves` parses the two
    halves of the batch at once, on two threads: for a batch nothing else runs beside (the
    first of a file), which the pipeline waits for."""
    if not len(lines):
        return Parsed(pa.table({}), {}, lines.text, 0, 0, (clock.year, clock.month))
    zone = local_zone_name() if config.timezone == "localtime" else config.timezone
    years = native.years(lines.text, clock, config.year)  # in line order: a year can roll over

    def part(start: int, stop: int, cur: duckdb.DuckDBPyConnection) -> tuple[pa.Table, dict[str, pa.Table], np.ndarray]:
        return native.parse_tables(cur, lines.text.slice(start, stop - start), lines.problem.slice(start, stop - start),
                                   start, years[start:stop], zone, with_body)

    n = len(lines)
    if not halves or n < 2:
        ev1, families, ts = part(0, n, con)
    else:
        with ThreadPoolExecutor(1) as pool, con.cursor() as cur:
            later = pool.submit(part, n // 2, n, cur)
            first = part(0, n // 2, con)
            second = later.result()
        ev1 = pa.concat_tables([first[0], second[0]])
        families = {f: pa.concat_tables([first[1][f], second[1][f]]) for f in first[1]}
        ts = np.concatenate([first[2], second[2]])
    return Parsed(ev1, families, lines.text, _backwards(ts), lines.invalid_utf8, (clock.year, clock.month))


# The families whose tables a batch's SQL reads as ev_<family> (the correlator's statements
# and the metrics'): the pipeline registers only these, with ev1. A registration costs
# ~0.3 ms on the main thread, and a batch had some thirty.
SQL_FAMILIES = ("not_parsed", "postscreen", "sasl_failed", "reject", "header_action", "tls", "dkim")


def load(con: duckdb.DuckDBPyConnection, parsed: Parsed, first_seq: int,
         families: tuple[str, ...] | None = None) -> tuple[int, dict[str, pa.Table]]:
    """Number a parsed batch's tables from first_seq, and register them for SQL: ev1 and
    ev_<family> for each of `families`, or, when None, every family and batch_in (as the
    SQL reference registers them). Arrow tables are scanned in place: copying them into
    temp tables costs more than the scans. Returns the lines that went back in time and
    every table by name, registered or not."""
    def numbered(table: pa.Table) -> pa.Table:
        at = table.schema.get_field_index("seq")
        return table.set_column(at, "seq", pc.add(table.column(at), pa.scalar(first_seq, pa.int64())))
    tables = {"ev1": numbered(parsed.ev1)}
    tables.update((f"ev_{family}", numbered(table)) for family, table in parsed.families.items())
    tables["batch_in"] = pa.table({"seq": tables["ev1"].column("seq"), "line": parsed.text})
    wanted = None if families is None else {"ev1", *(f"ev_{family}" for family in families)}
    for name, table in tables.items():
        if wanted is None or name in wanted:
            con.register(name, table)
    return parsed.backwards, tables


def parse(con: duckdb.DuckDBPyConnection, lines: Lines, first_seq: int, clock: Clock,
          config: ParserConfig, source: str) -> int:
    """Parse one batch of one source into ev1 and ev_<family> (see body.py), ev1 with the
    body column the SQL parser has (for comparing the two).

    Returns how many lines went back in time (counted, still parsed)."""
    return load(con, prepare(lines, clock, config, con, with_body=True), first_seq)[0]


def _backwards(ts: np.ndarray) -> int:
    """count_backwards over the batch's valid timestamps, in line order."""
    if len(ts) < 2:
        return 0
    running_max = np.maximum.accumulate(ts)
    return int(np.count_nonzero(ts[1:] < running_max[:-1] - 60_000_000))


def parse_sql(con: duckdb.DuckDBPyConnection, lines: Lines, first_seq: int, clock: Clock,
              config: ParserConfig, source: str) -> int:
    """The SQL parser that `parse` reproduces (the reference for tests).

    Returns how many lines went back in time (counted, still parsed)."""
    n = len(lines)
    con.register("batch_lines", pa.table({"line": lines.text}))
    try:
        years = header_years(con, "batch_lines", clock, config.year)
    finally:
        con.unregister("batch_lines")
    batch = pa.table({
        "seq": pa.array(range(first_seq, first_seq + n), pa.int64()),
        "line": lines.text,
        "problem": lines.problem,
        "yr": pa.array(years, pa.int16()),
    })
    # many small record batches, so that DuckDB scans them on every thread
    con.register("batch_in", pa.Table.from_batches(batch.to_batches(max_chunksize=1 << 15)))
    zone = local_zone_name() if config.timezone == "localtime" else config.timezone
    parse_bodies(con, header_sql(zone))
    return count_backwards(con)


def drop_batch_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Drop this batch's temp tables (parser's and correlator's) inside its transaction, so
    that they are freed at its commit instead of living on beside the next batch's."""
    names = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    for (name,) in names:
        con.execute(f'DROP TABLE IF EXISTS temp.main."{name}"')
    # the Arrow tables registered for the batch (the parser's, and the correlator's: qev,
    # cev_<family>, msg_batch and att_batch, the last two read by the hooks): each is a
    # temporary view
    views = con.execute("SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal").fetchall()
    for (name,) in views:
        con.unregister(name)
