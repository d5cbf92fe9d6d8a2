"""Parser stage: Arrow lines -> the temp table `events` (see body.py for its columns)."""
from __future__ import annotations

import duckdb
import pyarrow as pa

from exporter.config import ParserConfig
from exporter.parser.body import MACROS, MESSAGE_KINDS, SKIPPED_KINDS, parse_bodies
from exporter.parser.header import Clock, count_backwards, header_sql, header_years, local_zone_name
from exporter.sources.lines import Lines

__all__ = ["Clock", "MESSAGE_KINDS", "SKIPPED_KINDS", "drop_batch_tables", "install_macros", "parse"]


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(MACROS)


def parse(con: duckdb.DuckDBPyConnection, lines: Lines, first_seq: int, clock: Clock,
          config: ParserConfig, source: str) -> int:
    """Parse one batch of one source into the temp tables ev1 and ev_<family> (see body.py).

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
    con.unregister("batch_in")
