"""The delivery_records table: the read side's one flat row per recipient delivery.

The correlator keeps messages, recipients and rejects normalised; searching and aggregating
millions of records through their joins is too slow for a dashboard. So after each batch the
records of every message instance it touched are replaced (and its new NOQUEUE rejects
added), in one transaction: the table never shows half a batch and never drifts from the
facts. meta `records_seq` says how far they are current: lines before it are in them.
"""
from __future__ import annotations

from datetime import datetime

import duckdb

from exporter import reasons
from exporter.reasons import reason_sql
from exporter.store import meta
from exporter.store.schema import records_select

_DERIVED = f"""
    CASE WHEN instr(recipient, '@') > 0 THEN lower(split_part(recipient, '@', -1)) END AS rcpt_domain,
    CASE WHEN instr(sender, '@') > 0 THEN lower(split_part(sender, '@', -1)) END AS sender_domain,
    CASE WHEN status IN ('deferred', 'bounced', 'expired', 'rejected') THEN {reason_sql('response')} END AS reason"""


def _insert(con: duckdb.DuckDBPyConnection, msgs: str, rejects: str,
            id_range: tuple[int, int] | None = None, by_time: bool = False) -> None:
    """`by_time` sorts the rows, so that each row group covers a short time span and a time
    filter skips the others: worth it for a rebuild's days of records, not for one batch's
    minutes (~15% of the insert)."""
    order = " ORDER BY time" if by_time else ""
    con.execute(f"INSERT INTO delivery_records SELECT *, {_DERIVED} FROM ({records_select(msgs, rejects, id_range)}){order}")


def refresh(con: duckdb.DuckDBPyConnection) -> None:
    """Bring the records up to the facts as `con`'s transaction sees them: those of every
    instance with a line from records_seq on are rebuilt, and records_seq moves to next_seq."""
    since, upto = meta.counter(con, "records_seq"), meta.counter(con, "next_seq")
    if since >= upto:
        return
    # an instance that took a line since has it as its last_seq (a batch's facts always do)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE rec_touched AS
        SELECT msg_id FROM messages WHERE last_seq >= ?
        UNION SELECT msg_id FROM rejects WHERE seq >= ? AND msg_id IS NOT NULL""", [since, since])
    lo, hi = con.execute("SELECT min(msg_id), max(msg_id) FROM rec_touched").fetchall()[0]
    if lo is None:
        lo = hi = -1
    con.execute("DELETE FROM delivery_records WHERE msg_id IN (SELECT msg_id FROM rec_touched) AND msg_id BETWEEN ? AND ?",
                [lo, hi])
    _insert(con, "(SELECT msg_id FROM rec_touched)", f"j.seq >= {int(since)}", (lo, hi))
    con.execute("DROP TABLE rec_touched")
    meta.put(con, "records_seq", str(upto))


def rebuild(con: duckdb.DuckDBPyConnection, ids_per_step: int = 500_000) -> None:
    """Every record from the facts (a store written before the table existed), a range of
    message instances at a time, so that a large store fits the memory limit."""
    reasons.install(con)  # a Store installs it on its connection; this may be any
    con.execute("DELETE FROM delivery_records")
    lo, hi = con.execute("SELECT min(msg_id), max(msg_id) FROM messages").fetchall()[0]
    for start in range(lo or 0, (hi if hi is not None else -1) + 1, ids_per_step):
        end = start + ids_per_step - 1
        _insert(con, f"(SELECT msg_id FROM messages WHERE msg_id BETWEEN {start} AND {end})", "FALSE", (start, end),
                by_time=True)
    _insert(con, "(SELECT NULL::BIGINT WHERE FALSE)", "TRUE", by_time=True)  # NOQUEUE rejects
    meta.put(con, "records_seq", str(meta.counter(con, "next_seq")))


def prune(con: duckdb.DuckDBPyConnection, cutoff: datetime) -> None:
    """Records of the pruned instances (temp table old_msgs) and of rejects older than the cut-off."""
    con.execute("DELETE FROM delivery_records WHERE msg_id IN (SELECT msg_id FROM old_msgs)")
    con.execute("DELETE FROM delivery_records WHERE starts_with(rk, 'j') AND time < ?", [cutoff])
