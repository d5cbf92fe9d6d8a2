"""The store's small key/value state (table meta), on any connection: a Store's own, or a
background writer's (db.Background), such as the records refresh keeping its progress there
in a transaction of its own."""
from __future__ import annotations

import duckdb


def get(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    rows = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchall()
    return rows[0][0] if rows else None


def put(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute("DELETE FROM meta WHERE key = ?", [key])
    con.execute("INSERT INTO meta VALUES (?, ?)", [key, value])


def counter(con: duckdb.DuckDBPyConnection, key: str) -> int:
    return int(get(con, key) or 0)
