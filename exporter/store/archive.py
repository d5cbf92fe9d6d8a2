"""Retention and Parquet export (hive-partitioned by day, for archive and scale-out)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from exporter.store import records
from exporter.store.db import Store

# table -> the column that says which day a row belongs to
_DAY_OF = {
    "messages": "first_ts", "attempts": "ts", "rejects": "ts", "links": "ts",
    "lines": "ts", "unparsed": "ts", "delivery_records": "time",
}


def export_parquet(con: duckdb.DuckDBPyConnection, directory: Path) -> dict[str, int]:
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    for table, col in _DAY_OF.items():
        n = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        target = str(directory / table).replace("'", "''")
        con.execute(f"""COPY (SELECT *, coalesce({col}::DATE, DATE '1970-01-01') AS day FROM {table})
                        TO '{target}' (FORMAT parquet, PARTITION_BY (day), OVERWRITE_OR_IGNORE)""")
        written[table] = n
    return written


def prune(store: Store, older_than_days: float) -> int:
    """Drop closed message instances (and their rows) and other rows older than the cut-off.
    Returns how many message instances went."""
    cutoff = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=older_than_days)
    with store.transaction() as con:
        con.execute("""CREATE OR REPLACE TEMP TABLE old_msgs AS
                       SELECT msg_id FROM messages WHERE NOT open AND last_ts < ?""", [cutoff])
        n = con.execute("SELECT count(*) FROM old_msgs").fetchall()[0][0]
        records.prune(con, cutoff)
        for table in ("attempts", "lines"):
            con.execute(f"DELETE FROM {table} WHERE msg_id IN (SELECT msg_id FROM old_msgs)")
        con.execute("DELETE FROM links WHERE parent_msg_id IN (SELECT msg_id FROM old_msgs)")
        con.execute("DELETE FROM messages WHERE msg_id IN (SELECT msg_id FROM old_msgs)")
        for table in ("rejects", "unparsed"):
            con.execute(f"DELETE FROM {table} WHERE ts < ?", [cutoff])
        con.execute("DELETE FROM line_counts WHERE day < ?::DATE", [cutoff])
    return n
