"""Parser stage: Arrow lines -> the temp tables ev1 and ev_<family> (see body.py for their columns).

`parse` runs the native single-pass parser (native.py, _native.c); `parse_sql` is the SQL it
reproduces, kept as the reference the tests compare it with."""
from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from exporter.config import ParserConfig
from exporter.parser import native
from exporter.parser.body import MACROS, MESSAGE_KINDS, SKIPPED_KINDS, parse_bodies
from exporter.parser.header import Clock, count_backwards, header_sql, header_years, local_zone_name
from exporter.sources.lines import Lines

__all__ = ["Clock", "MESSAGE_KINDS", "SKIPPED_KINDS", "drop_batch_tables", "install_macros", "parse", "parse_sql"]


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(MACROS)


def parse(con: duckdb.DuckDBPyConnection, lines: Lines, first_seq: int, clock: Clock,
          config: ParserConfig, source: str) -> int:
    """Parse one batch of one source into the temp tables ev1 and ev_<family> (see body.py).

    Returns how many lines went back in time (counted, still parsed)."""
    zone = local_zone_name() if config.timezone == "localtime" else config.timezone
    ev1, families, ts = native.parse_tables(con, lines.text, lines.problem, first_seq,
                                            native.years(lines.text, clock, config.year), zone)
    con.register("batch_in", pa.table({"seq": ev1.column("seq"), "line": lines.text}))
    for name, table in (("ev1", ev1), *((f"ev_{f}", t) for f, t in families.items())):
        con.register("pi_arrow", table)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM pi_arrow")
        con.unregister("pi_arrow")
    return _backwards(ts)


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
    con.unregister("batch_in")
