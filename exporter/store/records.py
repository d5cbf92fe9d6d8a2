"""The delivery_records table: the read side's one flat row per recipient delivery, and the
per-recipient state each batch's delivery attempts are merged into.

Searching and aggregating millions of records through joins of messages, attempts and
rejects is too slow for a dashboard, so the records are kept flat. Each batch, in its own
transaction, replaces the records of every message instance it touched (and adds its
NOQUEUE rejects): the table never shows half a batch and never drifts from the facts.
`rebuild` makes the same rows from the facts alone (attempts, messages, rejects).
"""
from __future__ import annotations

from datetime import datetime

import duckdb

from exporter import reasons
from exporter.reasons import reason_sql

_DERIVED = f"""
    CASE WHEN instr(recipient, '@') > 0 THEN lower(split_part(recipient, '@', -1)) END AS rcpt_domain,
    CASE WHEN instr(sender, '@') > 0 THEN lower(split_part(sender, '@', -1)) END AS sender_domain,
    CASE WHEN status IN ('deferred', 'bounced', 'expired', 'rejected') THEN {reason_sql('response')} END AS reason"""

# A recipient's row from its attempts (grouped by msg_id, recipient, orig_recipient)
_RCPT_OF_ATTEMPTS = """
    msg_id, recipient, any_value(orig_recipient) AS orig_recipient,
    -- the latest attempt's values as they are: arg_max would skip its NULLs (no TLS, no reply)
    max(ts) AS ts, arg_max_null(status, seq) AS status, arg_max_null(dsn, seq) AS dsn,
    arg_max_null(relay, seq) AS relay, arg_max_null(delay, seq) AS delay, count(*)::INTEGER AS attempts,
    arg_max_null(response, seq) AS response, arg_max_null(tls_protocol, seq) AS tls,
    arg_max_null(transport, seq) AS transport"""
_BY_RECIPIENT = "GROUP BY msg_id, recipient, coalesce(orig_recipient, '')"


def _select(mm: str, rr: str, jj: str) -> str:
    """The records of the message instances `mm` (rows of messages), with their recipients
    `rr` (rows as _RCPT_OF_ATTEMPTS makes them) and rejects `jj` (rows of rejects; a NOQUEUE
    reject, msg_id NULL, is a record of its own)."""
    return f"""
WITH mm AS ({mm}), rr AS ({rr}),
jj AS (SELECT * FROM ({jj}) WHERE action IN ('reject', 'milter-reject'))
SELECT r.ts AS time, m.host, m.queue_id, m.message_id, m.sender, r.recipient, r.orig_recipient, m.subject,
       r.status, r.dsn, r.relay, r.delay AS delay_seconds, r.attempts, r.response, m.client_ip, r.tls,
       r.msg_id, r.transport, m.client_host, m.sasl_user, m.size,
       'r' || r.msg_id || ':' || r.recipient || ':' || coalesce(r.orig_recipient, '') AS rk
FROM rr r JOIN mm m ON m.msg_id = r.msg_id
UNION ALL
SELECT j.ts, j.host, j.queue_id, m.message_id, j.sender, j.recipient, NULL, m.subject,
       'rejected', j.dsn, NULL, NULL, 0, j.response, j.client_ip, NULL,
       j.msg_id, j.daemon, j.client_host, m.sasl_user, m.size, 'j' || j.seq
FROM jj j LEFT JOIN mm m ON m.msg_id = j.msg_id
UNION ALL
-- queued (or held, discarded) with no recipient record and not rejected: pending
SELECT coalesce(m.action_ts, m.held_ts, m.queued_ts, m.first_ts), m.host, m.queue_id, m.message_id, m.sender, NULL, NULL, m.subject,
       CASE WHEN m.action = 'discard' THEN 'discarded' WHEN m.action = 'hold' OR m.held_ts IS NOT NULL THEN 'held'
            ELSE 'pending' END,
       NULL, NULL, NULL, 0, NULL, m.client_ip, NULL,
       m.msg_id, NULL, m.client_host, m.sasl_user, m.size, 'm' || m.msg_id
FROM mm m
WHERE (m.queued_ts IS NOT NULL OR m.action IN ('discard', 'hold'))
  AND m.msg_id NOT IN (SELECT msg_id FROM rr)
  AND m.msg_id NOT IN (SELECT msg_id FROM jj WHERE msg_id IS NOT NULL)
"""


def _insert(con: duckdb.DuckDBPyConnection, mm: str, rr: str, jj: str, by_time: bool = False) -> None:
    """`by_time` sorts the rows, so that each row group covers a short time span and a time
    filter skips the others: worth it for a rebuild's days of records, not for one batch's
    minutes (~15% of the insert)."""
    order = " ORDER BY time" if by_time else ""
    con.execute(f"INSERT INTO delivery_records SELECT *, {_DERIVED} FROM ({_select(mm, rr, jj)}){order}")


def write_batch(con: duckdb.DuckDBPyConnection, new_ids: tuple[int, int], first_seq: int) -> None:
    """A batch's records, in its transaction, from the correlator's temp tables: msg_now (the
    row of every instance the batch touched, as stored now), msg_batch (the batch's own facts)
    and att_batch (its delivery attempts). `new_ids` are the instances that start in it (no
    records yet); the others' recipients are merged with the ones stored. Leaves rcpt_now:
    the touched instances' recipients, as their records now say."""
    lo = con.execute("SELECT coalesce(min(msg_id), 0) FROM msg_now").fetchall()[0][0]
    old = f"msg_id IN (SELECT msg_id FROM msg_now WHERE msg_id < {int(new_ids[0])}) AND msg_id BETWEEN {int(lo)} AND {int(new_ids[0]) - 1}"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE rcpt_batch AS
        SELECT {_RCPT_OF_ATTEMPTS}, coalesce(orig_recipient, '') AS orig_key FROM att_batch {_BY_RECIPIENT};

        -- the stored recipients of the instances continued from an earlier batch
        CREATE OR REPLACE TEMP TABLE rcpt_old AS
        SELECT msg_id, recipient, orig_recipient, time AS ts, status, dsn, relay, delay_seconds AS delay, attempts,
               response, tls, transport, coalesce(orig_recipient, '') AS orig_key
        FROM delivery_records WHERE {old} AND starts_with(rk, 'r');

        CREATE OR REPLACE TEMP TABLE rcpt_now AS
        SELECT b.msg_id, b.recipient, coalesce(b.orig_recipient, o.orig_recipient) AS orig_recipient, b.ts, b.status,
               b.dsn, b.relay, b.delay, b.attempts + coalesce(o.attempts, 0) AS attempts, b.response, b.tls, b.transport
        FROM rcpt_batch b
        LEFT JOIN rcpt_old o ON o.msg_id = b.msg_id AND o.recipient = b.recipient AND o.orig_key = b.orig_key
        UNION ALL
        SELECT o.* EXCLUDE (orig_key) FROM rcpt_old o
        ANTI JOIN rcpt_batch b ON o.msg_id = b.msg_id AND o.recipient = b.recipient AND o.orig_key = b.orig_key;

        -- qmgr returned the message to its sender: recipients still deferred have expired
        UPDATE rcpt_now SET status = 'expired', ts = m.expired_ts
        FROM msg_batch m
        WHERE rcpt_now.msg_id = m.msg_id AND m.expired_ts IS NOT NULL AND rcpt_now.status = 'deferred';

        DELETE FROM delivery_records WHERE {old};
    """)
    _insert(con, "SELECT * FROM msg_now", "SELECT * FROM rcpt_now",
            f"""SELECT * FROM rejects WHERE (msg_id IN (SELECT msg_id FROM msg_now) AND msg_id BETWEEN {int(lo)} AND {int(new_ids[1])})
                OR (msg_id IS NULL AND seq >= {int(first_seq)})""")


def _recipients_of_facts(ids: str) -> str:
    """Recipients of the instances whose msg_id is `ids` (a SQL range), from every attempt:
    what the batches' merges add up to."""
    expired = "r.status = 'deferred' AND m.expired_ts IS NOT NULL"
    return f"""
        SELECT r.* REPLACE (CASE WHEN {expired} THEN m.expired_ts ELSE r.ts END AS ts,
                            CASE WHEN {expired} THEN 'expired' ELSE r.status END AS status)
        FROM (SELECT {_RCPT_OF_ATTEMPTS} FROM attempts WHERE msg_id {ids} {_BY_RECIPIENT}) r
        JOIN messages m ON m.msg_id = r.msg_id AND m.msg_id {ids}"""


def rebuild(con: duckdb.DuckDBPyConnection, ids_per_step: int = 500_000) -> None:
    """Every record from the facts (a store written before the table took its present
    shape), a range of message instances at a time, so that a large store fits the memory
    limit."""
    reasons.install(con)  # a Store installs it on its connection; this may be any
    con.execute("DELETE FROM delivery_records")
    lo, hi = con.execute("SELECT min(msg_id), max(msg_id) FROM messages").fetchall()[0]
    for start in range(lo or 0, (hi if hi is not None else -1) + 1, ids_per_step):
        ids = f"BETWEEN {start} AND {start + ids_per_step - 1}"
        _insert(con, f"SELECT * FROM messages WHERE msg_id {ids}", _recipients_of_facts(ids),
                f"SELECT * FROM rejects WHERE msg_id {ids}", by_time=True)
    none = "BETWEEN 0 AND -1"
    _insert(con, f"SELECT * FROM messages WHERE msg_id {none}", _recipients_of_facts(none),
            "SELECT * FROM rejects WHERE msg_id IS NULL", by_time=True)  # NOQUEUE rejects


def prune(con: duckdb.DuckDBPyConnection, cutoff: datetime) -> None:
    """Records of the pruned instances (temp table old_msgs) and of rejects older than the cut-off."""
    con.execute("DELETE FROM delivery_records WHERE msg_id IN (SELECT msg_id FROM old_msgs)")
    con.execute("DELETE FROM delivery_records WHERE starts_with(rk, 'j') AND time < ?", [cutoff])
