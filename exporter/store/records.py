"""The delivery_records table: the read side's one flat row per recipient delivery.

Searching and aggregating millions of records through joins of messages, attempts and
rejects is too slow for a dashboard, so the records are kept flat, made from those facts:
after each batch the records of every message instance it touched are replaced (and its
NOQUEUE rejects added), in one transaction, so that the table never shows half a batch and
never drifts from the facts. meta `records_seq` says how far they are current: lines
before it are in them. `rebuild` makes every record the same way.
"""
from __future__ import annotations

from datetime import datetime

import duckdb

from exporter import reasons
from exporter.reasons import reason_sql
from exporter.store import meta

_DERIVED = f"""
    CASE WHEN instr(recipient, '@') > 0 THEN lower(split_part(recipient, '@', -1)) END AS rcpt_domain,
    CASE WHEN instr(sender, '@') > 0 THEN lower(split_part(sender, '@', -1)) END AS sender_domain,
    CASE WHEN status IN ('deferred', 'bounced', 'expired', 'rejected') THEN {reason_sql('response')} END AS reason"""

# A recipient's row from its attempts (grouped by msg_id, recipient, orig_recipient)
_RCPT_OF_ATTEMPTS = """
    msg_id, recipient, any_value(orig_recipient) AS orig_recipient,
    -- the latest attempt's values as they are: arg_max would skip its NULLs (no TLS, no reply)
    max(ts) AS ts, min(seq) AS first_seq, arg_max_null(status, seq) AS status, arg_max_null(dsn, seq) AS dsn,
    arg_max_null(relay, seq) AS relay, arg_max_null(delay, seq) AS delay, count(*)::INTEGER AS attempts,
    arg_max_null(response, seq) AS response, arg_max_null(tls_protocol, seq) AS tls,
    arg_max_null(transport, seq) AS transport"""
_BY_RECIPIENT = "GROUP BY msg_id, recipient, coalesce(orig_recipient, '')"

# Which rows of delivery_records are which: a recipient's has its attempts (at least one), a
# reject's and a pending instance's have none, and only a reject's status is `rejected`
IS_RECIPIENT = "attempts > 0"
IS_REJECT = "(attempts = 0 AND status = 'rejected')"


def _select(mm: str, rr: str, jj: str) -> str:
    """The records of the message instances `mm` (rows of messages), with their recipients
    `rr` (rows as _RCPT_OF_ATTEMPTS makes them) and rejects `jj` (rows of rejects; a NOQUEUE
    reject, msg_id NULL, is a record of its own). An instance without recipients gets one
    record, `pending` (or held, discarded), when it was queued and not rejected: from the
    same outer join as its recipients' records, so that `rr` is read once (as a second
    consumer DuckDB would first materialize it: ~10% of the insert)."""
    return f"""
WITH mm AS ({mm}),
jj AS (SELECT * FROM ({jj}) WHERE action IN ('reject', 'milter-reject'))
SELECT CASE WHEN r.msg_id IS NULL THEN coalesce(m.action_ts, m.held_ts, m.queued_ts, m.first_ts) ELSE r.ts END AS time,
       m.host, m.queue_id, m.message_id, m.sender, r.recipient, r.orig_recipient, m.subject,
       CASE WHEN r.msg_id IS NOT NULL THEN r.status WHEN m.action = 'discard' THEN 'discarded'
            WHEN m.action = 'hold' OR m.held_ts IS NOT NULL THEN 'held' ELSE 'pending' END AS status,
       r.dsn, r.relay, r.delay AS delay_seconds, coalesce(r.attempts, 0) AS attempts, r.response, m.client_ip, r.tls,
       m.msg_id, r.transport, m.client_host, m.sasl_user, m.size,
       coalesce(r.first_seq, m.first_seq) AS rk
FROM mm m LEFT JOIN ({rr}) r ON r.msg_id = m.msg_id
WHERE r.msg_id IS NOT NULL
   OR ((m.queued_ts IS NOT NULL OR m.action IN ('discard', 'hold'))
       AND m.msg_id NOT IN (SELECT msg_id FROM jj WHERE msg_id IS NOT NULL))
UNION ALL
SELECT j.ts, j.host, j.queue_id, m.message_id, j.sender, j.recipient, NULL, m.subject,
       'rejected', j.dsn, NULL, NULL, 0, j.response, j.client_ip, NULL,
       j.msg_id, j.daemon, j.client_host, m.sasl_user, m.size, j.seq
FROM jj j LEFT JOIN mm m ON m.msg_id = j.msg_id
"""


def recipients(attempts: str, messages: str) -> str:
    """Each recipient's row from its attempts (`attempts`, a SQL set of attempts rows): the
    latest one's values and how many there were, for the instances in `messages` (a SQL set
    of msg_id, expired_ts). A recipient still deferred when qmgr returned the message to its
    sender has expired. The records' and the expired-bounce metric's one definition."""
    expired = "r.status = 'deferred' AND m.expired_ts IS NOT NULL"
    return f"""
        SELECT r.* REPLACE (CASE WHEN {expired} THEN m.expired_ts ELSE r.ts END AS ts,
                            CASE WHEN {expired} THEN 'expired' ELSE r.status END AS status)
        FROM (SELECT {_RCPT_OF_ATTEMPTS} FROM ({attempts}) {_BY_RECIPIENT}) r
        JOIN ({messages}) m ON m.msg_id = r.msg_id"""


def _replace(con: duckdb.DuckDBPyConnection, ids: str, noqueue: str, by_time: bool = False) -> None:
    """Insert the records of the instances whose msg_id is `ids` (a SQL condition) and of the
    NOQUEUE rejects (msg_id NULL) matching `noqueue`. `by_time` sorts the rows, so that each
    row group covers a short time span and a time filter skips the others: worth it for a
    rebuild's days of records, not for one batch's minutes (~15% of the insert)."""
    select = _select(f"SELECT * FROM messages WHERE msg_id {ids}",
                     recipients(f"SELECT * FROM attempts WHERE msg_id {ids}",
                                f"SELECT msg_id, expired_ts FROM messages WHERE msg_id {ids}"),
                     f"SELECT * FROM rejects WHERE msg_id {ids} OR (msg_id IS NULL AND {noqueue})")
    order = " ORDER BY time" if by_time else ""
    con.execute(f"INSERT INTO delivery_records SELECT *, {_DERIVED} FROM ({select}){order}")


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
    # the range lets DuckDB skip the row groups of older instances
    ids = f"IN (SELECT msg_id FROM rec_touched) AND msg_id BETWEEN {int(lo or 0)} AND {int(hi if hi is not None else -1)}"
    con.execute(f"DELETE FROM delivery_records WHERE msg_id {ids}")
    _replace(con, ids, f"seq >= {int(since)}")
    con.execute("DROP TABLE rec_touched")
    meta.put(con, "records_seq", str(upto))


def rebuild(con: duckdb.DuckDBPyConnection, ids_per_step: int = 500_000) -> None:
    """Every record from the facts (a store written before the table took its present
    shape), a range of message instances at a time, so that a large store fits the memory
    limit."""
    reasons.install(con)  # a Store installs it on its connection; this may be any
    con.execute("DELETE FROM delivery_records")
    lo, hi = con.execute("SELECT min(msg_id), max(msg_id) FROM messages").fetchall()[0]
    for start in range(lo or 0, (hi if hi is not None else -1) + 1, ids_per_step):
        _replace(con, f"BETWEEN {start} AND {start + ids_per_step - 1}", "FALSE", by_time=True)
    _replace(con, "BETWEEN 0 AND -1", "TRUE", by_time=True)  # NOQUEUE rejects
    meta.put(con, "records_seq", str(meta.counter(con, "next_seq")))


def prune(con: duckdb.DuckDBPyConnection, cutoff: datetime) -> None:
    """Records of the pruned instances (temp table old_msgs) and of rejects older than the cut-off."""
    con.execute("DELETE FROM delivery_records WHERE msg_id IN (SELECT msg_id FROM old_msgs)")
    con.execute(f"DELETE FROM delivery_records WHERE {IS_REJECT} AND time < ?", [cutoff])
