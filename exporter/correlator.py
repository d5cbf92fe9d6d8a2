"""Correlator stage: parsed events -> message instances and per-recipient delivery records.

Works in bulk, one batch at a time, inside the store's transaction. Its open state is the
store itself (`messages.open`, `pid_tls`), so a crash never leaves it out of step with the
rows written, and a restart resumes exactly where the last commit left off.

A message instance is keyed by (host, queue ID) and ends at `removed`; Postfix reuses
short queue IDs, so an origin line (smtpd client=, pickup) or a line after `removed` starts a
new instance, and so does a gap longer than `expire_after_seconds`.
"""
from __future__ import annotations

import email.header
import functools
import re
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from exporter.config import CorrelatorConfig
from exporter.parser.body import MESSAGE_KINDS, SKIPPED_KINDS

_MIME_GAP = re.compile(r"\?=[\s?]+=\?")


def decode_subject(raw: str | None) -> str | None:
    """Decode MIME encoded-words; Postfix logs folding whitespace between them as '?'."""
    if raw is None or "=?" not in raw:
        return raw
    try:
        parts = email.header.decode_header(_MIME_GAP.sub("?= =?", raw))
        return str(email.header.make_header(parts))
    except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
        return raw


@dataclass
class BatchResult:
    lines: int = 0
    messages: int = 0
    evicted: dict[str, int] = field(default_factory=dict)


_decode_cached = functools.lru_cache(maxsize=1 << 16)(decode_subject)


def _decode_subjects(subjects: pa.Array) -> pa.Array:
    """pi_mime over a whole vector: one call per vector, repeated subjects decoded once."""
    return pa.array([_decode_cached(s) for s in subjects.to_pylist()], pa.string())


_MESSAGE_KINDS = pa.array(MESSAGE_KINDS, pa.string())


def install(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.create_function("pi_mime", _decode_subjects, ["VARCHAR"], "VARCHAR", type="arrow",
                            null_handling="special")
    except duckdb.CatalogException:
        pass  # already registered on this connection


def correlate(con: duckdb.DuckDBPyConnection, config: CorrelatorConfig, next_msg_id: int,
              source_name: str, batch: dict[str, pa.Table] | None = None) -> tuple[int, BatchResult]:
    """Fold the parser's tables into the store (`batch`: the same tables as Arrow, by name,
    when the caller has them: spares scans and copies). Returns the next free msg_id."""
    expire = float(config.expire_after_seconds)
    qev_arrow = _assign_instances(con, next_msg_id, expire, batch["ev1"] if batch else None)
    cev = _with_msg_ids(con, batch, qev_arrow)
    new_max = con.execute("SELECT coalesce(max(new_id), 0) FROM qev").fetchall()[0][0]
    _merge_messages(con, qev_arrow, cev)
    _write_attempts(con, cev.get("delivery"))
    _merge_recipients(con)
    _write_rejects_links_lines(con, source_name, config.link_window_seconds)
    result = BatchResult()
    result.evicted = _close_and_evict(con, config)
    _count_lines(con, result.evicted)
    result.messages = con.execute("SELECT count(*) FROM msg_batch").fetchall()[0][0]
    if batch is not None:
        for name in (*_CEV, "lines"):
            con.unregister(f"cev_{name}")
    con.unregister("qev")
    return max(next_msg_id, new_max + 1), result


# families whose rows the correlator needs with their instance: as cev_<family> (ev_<family> + msg_id)
_CEV = ("client", "pickup", "message_id", "header_action", "queue", "info", "dkim", "delivery", "reject", "notify")


def _with_msg_ids(con: duckdb.DuckDBPyConnection, batch: dict[str, pa.Table] | None,
                  qev: pa.Table) -> dict[str, pa.Table]:
    """cev_<family>: the family's rows with the msg_id of their line in qev (NULL when not a
    message line), so that the merges below group by it instead of joining qev on seq.
    Returns them as Arrow by family (empty when made in SQL)."""
    cev: dict[str, pa.Table] = {}
    if batch is None:
        for family in _CEV:
            con.execute(f"""CREATE OR REPLACE TEMP TABLE cev_{family} AS
                            SELECT e.*, q.msg_id FROM ev_{family} e LEFT JOIN qev q USING (seq)""")
        con.execute("""CREATE OR REPLACE TEMP TABLE cev_lines AS
                       SELECT q.msg_id, q.seq, q.ts, b.line FROM qev q JOIN batch_in b USING (seq)""")
        return cev
    ev1 = batch["ev1"]
    seq0 = ev1.column("seq")[0].as_py() if ev1.num_rows else 0  # ev1's seq counts up from it
    msg_of_row = np.full(ev1.num_rows, -1, np.int64)
    msg_of_row[qev.column("seq").to_numpy() - seq0] = qev.column("msg_id").to_numpy()
    for family in _CEV:
        table = batch[f"ev_{family}"]
        ids = msg_of_row[table.column("seq").to_numpy() - seq0]
        cev[family] = table.append_column("msg_id", pa.array(ids, mask=ids < 0))
        con.register(f"cev_{family}", cev[family])
    # the raw lines of the message lines, for the lines table
    rows = qev.column("seq").to_numpy() - seq0
    line = batch["batch_in"].column("line")
    if len(rows) < 2 or bool(np.all(rows[1:] > rows[:-1])):
        keep = np.zeros(ev1.num_rows, bool)  # qev is in line order: a filter copies runs, a take each string
        keep[rows] = True
        line = line.filter(pa.array(keep))
    else:
        line = line.take(pa.array(rows))
    con.register("cev_lines", pa.table({"msg_id": qev.column("msg_id"), "seq": qev.column("seq"), "ts": qev.column("ts"),
                                        "line": line}))
    return cev


def _assign_instances(con: duckdb.DuckDBPyConnection, next_msg_id: int, expire: float,
                      ev1: pa.Table | None = None) -> pa.Table:
    """qev: each message line of the batch with its instance (msg_id), whether it starts one
    (`starts`, with its `new_id`) and the open instance it found (`open_id`); registered as
    the view `qev` and returned as Arrow."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE open_msgs AS
        SELECT msg_id, host, queue_id, last_ts, first_seq FROM messages WHERE open""")
    qev = _instances_numpy(con, next_msg_id, expire, ev1)
    con.register("qev", qev)  # scanned in place, like the parser's tables
    return qev


def _instances_numpy(con: duckdb.DuckDBPyConnection, next_msg_id: int, expire: float,
                     ev1: pa.Table | None) -> pa.Table:
    """Instances by one sort in numpy (SQL windows over string keys cost more than the rest of
    the correlator). Per (host, queue ID), in line order, a line starts a new instance when it
    is an origin (smtpd client=, pickup), follows `removed`, or comes over `expire` seconds
    after the line before (for the first line of the batch: after the open instance's last
    line, or when none is open); other lines join the latest instance. Where an open (host,
    queue ID) is not unique, the latest open instance takes the lines."""
    if ev1 is None:
        ev1 = con.sql("SELECT seq, ts, host, qid, kind, instance FROM ev1 ORDER BY seq").to_arrow_table()
    ev1 = ev1.select(["seq", "ts", "host", "qid", "kind", "instance"])
    q = ev1.filter(pc.and_(pc.is_valid(ev1.column("qid")), pc.is_in(ev1.column("kind"), value_set=_MESSAGE_KINDS)))
    o = con.sql("SELECT msg_id, host, queue_id, epoch_us(last_ts) AS last_us FROM open_msgs").to_arrow_table()
    n = q.num_rows
    def joined(host: pa.ChunkedArray, qid: pa.ChunkedArray) -> list[pa.Array]:
        wide = pa.large_string()
        return pc.binary_join_element_wise(pc.cast(host, wide), pc.cast(qid, wide), pa.scalar("\x00", wide)).chunks
    keys = pa.chunked_array(joined(q.column("host"), q.column("qid")) + joined(o.column("host"), o.column("queue_id")),
                            pa.large_string())
    codes = keys.dictionary_encode().combine_chunks().indices.to_numpy(zero_copy_only=False).astype(np.int64)
    gid, ogid = codes[:n], codes[n:]
    if len(np.unique(ogid)) != len(ogid):
        # several open instances of one (host, queue ID) (lines that arrived out of order can
        # leave that): the batch's lines go to the one seen last
        last = o.column("last_us").to_numpy(zero_copy_only=False)
        order = np.lexsort((o.column("msg_id").to_numpy(zero_copy_only=False), last, ogid))
        keep = np.ones(len(order), bool)
        keep[:-1] = ogid[order][1:] != ogid[order][:-1]
        o, ogid = o.take(pa.array(order[keep])), ogid[order[keep]]
    groups = int(codes.max()) + 1 if len(codes) else 0
    open_id = np.full(groups, -1, np.int64)
    open_last = np.zeros(groups, np.int64)
    open_id[ogid] = o.column("msg_id").to_numpy(zero_copy_only=False)
    open_last[ogid] = o.column("last_us").to_numpy(zero_copy_only=False)

    ts = pc.cast(q.column("ts"), pa.int64()).to_numpy(zero_copy_only=False)
    kind = q.column("kind")
    origin = pc.is_in(kind, value_set=pa.array(["client", "pickup"])).to_numpy(zero_copy_only=False)
    removed = pc.equal(kind, "removed").to_numpy(zero_copy_only=False)
    order = np.argsort(gid, kind="stable")  # rows come in seq order: by group, then seq
    g, t = gid[order], ts[order]
    first = np.ones(n, bool)
    first[1:] = g[1:] != g[:-1]
    prev_t = np.empty(n, np.int64)
    prev_t[1:] = t[:-1]
    prev_removed = np.zeros(n, bool)
    prev_removed[1:] = removed[order][:-1]
    oid = open_id[g]
    starts_by_group = np.where(
        first,
        (oid < 0) | origin[order] | ((t - open_last[g]) / 1e6 > expire),
        origin[order] | prev_removed | ((t - prev_t) / 1e6 > expire))
    starts = np.empty(n, bool)
    starts[order] = starts_by_group
    new_id = np.where(starts, next_msg_id - 1 + np.cumsum(starts), -1)
    # the latest new_id so far within the group, else the open instance
    nid = new_id[order]
    pos = np.where((nid >= 0) | first, np.arange(n), 0)
    last = np.maximum.accumulate(pos) if n else pos
    msg_by_group = np.where(nid[last] >= 0, nid[last], oid)
    msg_id = np.empty(n, np.int64)
    msg_id[order] = msg_by_group
    open_col = np.empty(n, np.int64)
    open_col[order] = oid
    return pa.table({
        "seq": q.column("seq"), "ts": q.column("ts"), "host": q.column("host"), "qid": q.column("qid"),
        "kind": kind, "instance": q.column("instance"),
        "open_id": pa.array(open_col, mask=open_col < 0),
        "starts": pa.array(starts),
        "new_id": pa.array(new_id, mask=new_id < 0),
        "msg_id": pa.array(msg_id),
    })


_MSG_BATCH_SQL = """
        CREATE OR REPLACE TEMP TABLE msg_batch AS
        WITH base AS (
            SELECT msg_id, any_value(host) AS host, any_value(qid) AS queue_id, arg_min(instance, seq) AS instance,
                   min(ts) AS first_ts, max(ts) AS last_ts, min(seq) AS first_seq, max(seq) AS last_seq,
                   bool_or(kind = 'removed') AS removed
            FROM qev GROUP BY msg_id
        ), cl AS (
            SELECT c.msg_id, arg_max(c.service, c.seq) AS origin, arg_max(c.client_host, c.seq) AS client_host,
                   arg_max(c.client_ip, c.seq) AS client_ip, arg_max(c.sasl_method, c.seq) AS sasl_method,
                   arg_max(c.sasl_user, c.seq) AS sasl_user
            FROM cev_client c WHERE c.msg_id IS NOT NULL GROUP BY c.msg_id
        ), pk AS (
            SELECT p.msg_id, arg_max(p.sender, p.seq) AS sender FROM cev_pickup p WHERE p.msg_id IS NOT NULL GROUP BY p.msg_id
        ), mid AS (
            SELECT m.msg_id, arg_min(m.message_id, m.seq) AS message_id
            FROM cev_message_id m WHERE m.msg_id IS NOT NULL AND m.kind = 'message_id' GROUP BY m.msg_id
        ), hc AS (
            SELECT h.msg_id,
                   arg_min(trim(substr(h.check_text, 9)), h.seq)
                       FILTER (WHERE h.stage = 'header' AND lower(substr(h.check_text, 1, 8)) = 'subject:') AS subject_raw,
                   arg_max(h.action, h.seq) FILTER (WHERE h.action IN ('reject', 'discard', 'hold')) AS action,
                   max(h.ts) FILTER (WHERE h.action IN ('reject', 'discard', 'hold')) AS action_ts
            FROM cev_header_action h WHERE h.msg_id IS NOT NULL GROUP BY h.msg_id
        ), qd AS (
            SELECT e.msg_id, arg_min(e.sender, e.seq) AS sender, arg_min(e.size, e.seq) FILTER (WHERE e.kind = 'queued') AS size,
                   arg_min(e.nrcpt, e.seq) FILTER (WHERE e.kind = 'queued') AS nrcpt,
                   min(e.ts) FILTER (WHERE e.kind = 'queued') AS queued_ts,
                   max(e.ts) FILTER (WHERE e.kind = 'expired') AS expired_ts
            FROM cev_queue e WHERE e.msg_id IS NOT NULL GROUP BY e.msg_id
        ), hold AS (
            SELECT i.msg_id, max(i.ts) FILTER (WHERE i.kind = 'hold') AS held_ts,
                   max(i.ts) FILTER (WHERE i.kind = 'release') AS released_ts
            FROM cev_info i WHERE i.msg_id IS NOT NULL AND i.kind IN ('hold', 'release') GROUP BY i.msg_id
        ), dk AS (
            SELECT d.msg_id, arg_max(d.dkim_domain, d.seq) FILTER (WHERE d.kind = 'dkim_sign') AS dkim_domain,
                   arg_max(d.dkim_selector, d.seq) FILTER (WHERE d.kind = 'dkim_sign') AS dkim_selector,
                   arg_max(d.dkim_result, d.seq) FILTER (WHERE d.kind = 'dkim_verify') AS dkim_result
            FROM cev_dkim d WHERE d.msg_id IS NOT NULL GROUP BY d.msg_id
        )
        SELECT base.*, coalesce(cl.origin, CASE WHEN pk.msg_id IS NOT NULL THEN 'pickup' END) AS origin,
               cl.client_host, cl.client_ip, cl.sasl_method, cl.sasl_user, mid.message_id,
               CASE WHEN instr(hc.subject_raw, '=?') > 0 THEN pi_mime(hc.subject_raw) ELSE hc.subject_raw END AS subject,
               coalesce(qd.sender, pk.sender) AS sender, qd.sender AS qmgr_sender, qd.size, qd.nrcpt, qd.queued_ts, qd.expired_ts,
               CASE WHEN hold.released_ts >= hold.held_ts THEN NULL ELSE hold.held_ts END AS held_ts,
               hold.released_ts, hc.action, hc.action_ts, dk.dkim_domain, dk.dkim_selector, dk.dkim_result
        FROM base LEFT JOIN cl USING (msg_id) LEFT JOIN pk USING (msg_id) LEFT JOIN mid USING (msg_id)
             LEFT JOIN hc USING (msg_id) LEFT JOIN qd USING (msg_id) LEFT JOIN hold USING (msg_id) LEFT JOIN dk USING (msg_id)
"""


_I64_MAX = np.iinfo(np.int64).max
_ACTIONS = pa.array(["reject", "discard", "hold"], pa.string())


def _bools(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(bool)


def _in_seq_order(table: pa.Table) -> bool:
    seq = table.column("seq").to_numpy(zero_copy_only=False) if table.num_rows else np.zeros(0)
    return bool(np.all(seq[1:] > seq[:-1]))


def _msg_batch_numpy(qev: pa.Table, cev: dict[str, pa.Table]) -> pa.Table | None:
    """_MSG_BATCH_SQL in numpy, for rows in seq order (None otherwise): per instance, the
    first or last row with a value (arg_min/arg_max by seq skip NULLs) and min/max times."""
    tables = (qev, *(cev[f] for f in ("client", "pickup", "message_id", "header_action", "queue", "info", "dkim")))
    if not all(_in_seq_order(t) for t in tables):
        return None
    msgs, qpos = np.unique(qev.column("msg_id").to_numpy(zero_copy_only=False).astype(np.int64), return_inverse=True)
    m = len(msgs)

    def positions(table: pa.Table) -> np.ndarray:
        """Each row's instance as its index in msgs (-1: not a message line)."""
        ids = pc.fill_null(table.column("msg_id"), -1).to_numpy(zero_copy_only=False).astype(np.int64)
        if not m:
            return np.full(len(ids), -1, np.int64)
        at = np.minimum(np.searchsorted(msgs, ids), m - 1)
        return np.where((ids >= 0) & (msgs[at] == ids), at, -1)

    def valid(col: pa.ChunkedArray) -> np.ndarray:
        return np.asarray(col.is_valid()) if col.null_count else np.ones(len(col), bool)

    def row_of(pos: np.ndarray, ok: np.ndarray, last: bool) -> np.ndarray:
        """Per instance, its first (last) row where ok; -1 when none."""
        rows = np.flatnonzero(ok & (pos >= 0))
        acc = np.full(m, -1 if last else _I64_MAX, np.int64)
        (np.maximum if last else np.minimum).at(acc, pos[rows], rows)
        acc[acc == _I64_MAX] = -1
        return acc

    def pick(table: pa.Table, pos: np.ndarray, name: str, ok: np.ndarray | None = None, last: bool = True):
        col = table.column(name)
        mask = valid(col) if ok is None else ok & valid(col)
        idx = row_of(pos, mask, last)
        return col.take(pa.array(idx, mask=idx < 0))

    def extreme(table: pa.Table, pos: np.ndarray, name: str, ok: np.ndarray | None, fn: np.ufunc):
        """min or max of a timestamp column per instance, over the rows where ok."""
        col = table.column(name)
        mask = valid(col) & (pos >= 0) if ok is None else ok & valid(col) & (pos >= 0)
        values = pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False)[mask]
        acc = np.full(m, _I64_MAX if fn is np.minimum else np.iinfo(np.int64).min, np.int64)
        fn.at(acc, pos[mask], values)
        seen = np.zeros(m, bool)
        seen[pos[mask]] = True
        return pc.cast(pa.array(acc, mask=~seen), col.type)

    everything = np.ones(qev.num_rows, bool)
    out: dict[str, pa.Array | pa.ChunkedArray] = {"msg_id": pa.array(msgs)}
    first = row_of(qpos, everything, False)
    out["host"] = qev.column("host").take(pa.array(first))
    out["queue_id"] = qev.column("qid").take(pa.array(first))
    out["instance"] = pick(qev, qpos, "instance", last=False)
    out["first_ts"] = extreme(qev, qpos, "ts", None, np.minimum)
    out["last_ts"] = extreme(qev, qpos, "ts", None, np.maximum)
    seq = qev.column("seq").to_numpy(zero_copy_only=False)
    out["first_seq"] = pa.array(seq[first])
    out["last_seq"] = pa.array(seq[row_of(qpos, everything, True)])
    removed = np.zeros(m, bool)
    removed[qpos[_bools(pc.equal(qev.column("kind"), "removed"))]] = True
    out["removed"] = pa.array(removed)

    client, cpos = cev["client"], positions(cev["client"])
    pickup, ppos = cev["pickup"], positions(cev["pickup"])
    origin = pick(client, cpos, "service")
    picked_up = np.zeros(m, bool)
    picked_up[ppos[ppos >= 0]] = True
    out["origin"] = pc.coalesce(origin, pc.if_else(pa.array(picked_up), pa.scalar("pickup", origin.type),
                                                   pa.scalar(None, origin.type)))
    for name in ("client_host", "client_ip", "sasl_method", "sasl_user"):
        out[name] = pick(client, cpos, name)
    mid = cev["message_id"]
    out["message_id"] = pick(mid, positions(mid), "message_id", _bools(pc.equal(mid.column("kind"), "message_id")),
                             last=False)
    head = cev["header_action"]
    hpos = positions(head)
    text = head.column("check_text")
    is_subject = _bools(pc.and_(pc.equal(head.column("stage"), "header"),
                                pc.equal(pc.utf8_lower(pc.utf8_slice_codeunits(text, 0, 8)), "subject:")))
    raw = pick(pa.table({"s": pc.utf8_trim(pc.utf8_slice_codeunits(text, 8), " ")}), hpos, "s", is_subject, last=False)
    encoded = _bools(pc.match_substring(raw, "=?"))
    if encoded.any():
        values = raw.to_pylist()
        for i in np.flatnonzero(encoded):
            values[i] = _decode_cached(values[i])
        raw = pa.array(values, pa.string())
    out["subject"] = raw
    queue = cev["queue"]
    qd = positions(queue)
    queued = _bools(pc.equal(queue.column("kind"), "queued"))
    qmgr_sender = pick(queue, qd, "sender", last=False)
    out["sender"] = pc.coalesce(qmgr_sender, pick(pickup, ppos, "sender"))
    out["qmgr_sender"] = qmgr_sender
    out["size"] = pick(queue, qd, "size", queued, last=False)
    out["nrcpt"] = pick(queue, qd, "nrcpt", queued, last=False)
    out["queued_ts"] = extreme(queue, qd, "ts", queued, np.minimum)
    out["expired_ts"] = extreme(queue, qd, "ts", _bools(pc.equal(queue.column("kind"), "expired")), np.maximum)
    info = cev["info"]
    ipos = positions(info)
    held = extreme(info, ipos, "ts", _bools(pc.equal(info.column("kind"), "hold")), np.maximum)
    released = extreme(info, ipos, "ts", _bools(pc.equal(info.column("kind"), "release")), np.maximum)
    out["held_ts"] = pc.if_else(pc.fill_null(pc.greater_equal(released, held), False), pa.scalar(None, held.type), held)
    out["released_ts"] = released
    acted = _bools(pc.is_in(head.column("action"), value_set=_ACTIONS))
    out["action"] = pick(head, hpos, "action", acted)
    out["action_ts"] = extreme(head, hpos, "ts", acted, np.maximum)
    dkim = cev["dkim"]
    dpos = positions(dkim)
    signed = _bools(pc.equal(dkim.column("kind"), "dkim_sign"))
    out["dkim_domain"] = pick(dkim, dpos, "dkim_domain", signed)
    out["dkim_selector"] = pick(dkim, dpos, "dkim_selector", signed)
    out["dkim_result"] = pick(dkim, dpos, "dkim_result", _bools(pc.equal(dkim.column("kind"), "dkim_verify")))
    return pa.table(out)


def _merge_messages(con: duckdb.DuckDBPyConnection, qev: pa.Table | None = None,
                    cev: dict[str, pa.Table] | None = None) -> None:
    """This batch's facts per instance, merged into the instances already stored (`qev` and
    `cev` as Arrow, when the caller has them: msg_batch is made in numpy)."""
    made = _msg_batch_numpy(qev, cev) if qev is not None and cev else None
    if made is not None:
        con.register("msg_batch", made)
    else:
        con.execute(_MSG_BATCH_SQL)
    con.execute("""
        -- instances replaced by a new one with the same queue ID in this batch
        CREATE OR REPLACE TEMP TABLE superseded AS
        SELECT DISTINCT o.msg_id FROM open_msgs o JOIN qev q ON q.host = o.host AND q.qid = o.queue_id
        WHERE q.starts AND q.msg_id <> o.msg_id;

        CREATE OR REPLACE TEMP TABLE msg_merged AS
        SELECT b.msg_id, b.host, b.queue_id, coalesce(m.instance, b.instance) AS instance,
               coalesce(m.first_ts, b.first_ts) AS first_ts, greatest(m.last_ts, b.last_ts) AS last_ts,
               coalesce(m.first_seq, b.first_seq) AS first_seq, greatest(m.last_seq, b.last_seq) AS last_seq,
               coalesce(m.origin, b.origin) AS origin, coalesce(m.client_host, b.client_host) AS client_host,
               coalesce(m.client_ip, b.client_ip) AS client_ip, coalesce(m.sasl_method, b.sasl_method) AS sasl_method,
               coalesce(m.sasl_user, b.sasl_user) AS sasl_user, coalesce(m.message_id, b.message_id) AS message_id,
               coalesce(m.subject, b.subject) AS subject,
               -- qmgr's envelope sender is the full address; pickup's (from an earlier batch) may be a bare login
               CASE WHEN m.queued_ts IS NULL AND b.qmgr_sender IS NOT NULL THEN b.qmgr_sender
                    ELSE coalesce(m.sender, b.sender) END AS sender,
               coalesce(m.size, b.size) AS size, coalesce(m.nrcpt, b.nrcpt) AS nrcpt,
               coalesce(m.queued_ts, b.queued_ts) AS queued_ts,
               coalesce(m.removed, false) OR b.removed AS removed, coalesce(b.expired_ts, m.expired_ts) AS expired_ts,
               CASE WHEN b.released_ts IS NOT NULL AND b.held_ts IS NULL THEN NULL
                    ELSE coalesce(b.held_ts, m.held_ts) END AS held_ts,
               coalesce(b.action, m.action) AS action, coalesce(b.action_ts, m.action_ts) AS action_ts,
               coalesce(b.dkim_domain, m.dkim_domain) AS dkim_domain, coalesce(b.dkim_selector, m.dkim_selector) AS dkim_selector,
               coalesce(b.dkim_result, m.dkim_result) AS dkim_result,
               NOT (coalesce(m.removed, false) OR b.removed) AS open
        FROM msg_batch b LEFT JOIN (SELECT * FROM messages WHERE open) m USING (msg_id);

        DELETE FROM messages WHERE open AND msg_id IN (SELECT msg_id FROM msg_merged);
        INSERT INTO messages BY NAME SELECT * FROM msg_merged;
        UPDATE messages SET open = false WHERE open AND msg_id IN (SELECT msg_id FROM superseded);
    """)


_ATT_COLUMNS = ("msg_id", "seq", "ts", "recipient", "orig_recipient", "transport", "instance", "relay", "delay",
                "delay_before_queue", "delay_in_queue", "delay_connect", "delay_transmit", "dsn", "status", "response",
                "code", "tls_protocol", "tls_trust", "tls_cipher", "link_kind", "child_qid", "host")
_TLS_WINDOW_US = 600 * 1_000_000


def _write_attempts(con: duckdb.DuckDBPyConnection, delivery: pa.Table | None = None) -> None:
    """Delivery lines, each with the TLS handshake its process logged just before it
    (`delivery`: cev_delivery as Arrow, when the caller has it: matched in numpy)."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE tls_seen AS
        SELECT host, pid, seq, ts, peer, tls_direction, tls_protocol, tls_trust, tls_cipher FROM ev_tls
        UNION ALL SELECT * FROM pid_tls""")
    if delivery is not None:
        con.register("att_batch", _attempts_numpy(con, delivery))
    else:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE att_batch AS
            SELECT d.msg_id, d.seq, d.ts, d.rcpt AS recipient, d.orig_rcpt AS orig_recipient, d.daemon AS transport,
                   d.instance, d.relay, d.delay, d.delay_before_queue, d.delay_in_queue, d.delay_connect, d.delay_transmit,
                   d.dsn, d.status, d.response, d.code,
                   CASE WHEN t.peer = d.relay AND epoch(d.ts - t.ts) <= 600 THEN t.tls_protocol END AS tls_protocol,
                   CASE WHEN t.peer = d.relay AND epoch(d.ts - t.ts) <= 600 THEN t.tls_trust END AS tls_trust,
                   CASE WHEN t.peer = d.relay AND epoch(d.ts - t.ts) <= 600 THEN t.tls_cipher END AS tls_cipher,
                   d.link_kind, d.child_qid, d.host
            FROM (SELECT * FROM cev_delivery WHERE msg_id IS NOT NULL) d
            ASOF LEFT JOIN (SELECT * FROM tls_seen WHERE tls_direction = 'to') t
                ON t.host = d.host AND t.pid = d.pid AND d.seq > t.seq""")
    con.execute("""
        INSERT INTO attempts BY NAME SELECT * EXCLUDE (link_kind, child_qid, host) FROM att_batch;

        DELETE FROM pid_tls;
        INSERT INTO pid_tls
        SELECT host, pid, max(seq), arg_max(ts, seq), arg_max(peer, seq), arg_max(tls_direction, seq),
               arg_max(tls_protocol, seq), arg_max(tls_trust, seq), arg_max(tls_cipher, seq)
        FROM tls_seen
        WHERE ts >= (SELECT max(ts) FROM tls_seen) - INTERVAL 10 MINUTE
        GROUP BY host, pid;
    """)


def _attempts_numpy(con: duckdb.DuckDBPyConnection, delivery: pa.Table) -> pa.Table:
    """The SQL's ASOF join in numpy: for each delivery line, the latest outgoing TLS handshake
    (before it) of the same process (host, pid), kept when its peer is the delivery's relay
    and it is at most 600 s older."""
    d = delivery.filter(pc.is_valid(delivery.column("msg_id")))
    t = con.sql("""SELECT host, pid, seq, epoch_us(ts) AS ts_us, peer, tls_protocol, tls_trust, tls_cipher
                   FROM tls_seen WHERE tls_direction = 'to' AND host IS NOT NULL AND pid IS NOT NULL""").to_arrow_table()
    nd, nt = d.num_rows, t.num_rows
    d_ok = pc.and_(pc.is_valid(d.column("host")), pc.is_valid(d.column("pid"))).to_numpy(zero_copy_only=False) \
        if nd else np.zeros(0, bool)
    wide = pa.large_string()
    hosts = pa.chunked_array([c for col in (d.column("host"), t.column("host")) for c in pc.cast(col, wide).chunks], wide)
    hcode = hosts.dictionary_encode().combine_chunks().indices.to_numpy(zero_copy_only=False).astype(np.int64) \
        if nd + nt else np.zeros(0, np.int64)
    pid_d = d.column("pid").to_numpy(zero_copy_only=False) if nd else np.zeros(0)
    pid_t = t.column("pid").to_numpy(zero_copy_only=False) if nt else np.zeros(0)
    pid_d = np.where(d_ok, np.nan_to_num(pid_d.astype(np.float64)), 0).astype(np.int64)
    key_d = (hcode[:nd] << 32) | (pid_d & 0xFFFFFFFF)
    key_t = (hcode[nd:] << 32) | (pid_t.astype(np.int64) & 0xFFFFFFFF)
    seq_d = d.column("seq").to_numpy(zero_copy_only=False).astype(np.int64)
    seq_t = t.column("seq").to_numpy(zero_copy_only=False).astype(np.int64)
    take = np.full(nd, -1, np.int64)
    if nd and nt:
        order = np.lexsort((seq_t, key_t))  # by process, then seq
        ks, ss = key_t[order], seq_t[order]
        # the last handshake of the same process with a smaller seq
        ukeys, kstart = np.unique(ks, return_index=True)
        kend = np.append(kstart[1:], len(ks))
        slot = np.searchsorted(ukeys, key_d)
        slot_ok = (slot < len(ukeys)) & d_ok
        slot_ok[slot_ok] = ukeys[slot[slot_ok]] == key_d[slot_ok]
        lo, hi = kstart[np.minimum(slot, len(ukeys) - 1)], kend[np.minimum(slot, len(ukeys) - 1)]
        # searchsorted within each process's run: seq offset by the run's position keeps runs apart
        span = int(max(ss.max(), seq_d.max()) - min(ss.min(), seq_d.min())) + 2
        base = int(min(ss.min(), seq_d.min()))
        run = np.repeat(np.arange(len(ukeys), dtype=np.int64), kend - kstart)
        comp_t = run * span + (ss - base)
        comp_d = np.minimum(slot, len(ukeys) - 1).astype(np.int64) * span + (seq_d - base)
        pos = np.searchsorted(comp_t, comp_d, side="left") - 1
        hit = slot_ok & (pos >= lo) & (pos < hi)
        take[hit] = order[pos[hit]]
    idx = pa.array(take, mask=take < 0)
    tt = t.take(idx)
    ts_d = pc.cast(d.column("ts"), pa.int64())
    near = pc.less_equal(pc.subtract(ts_d, tt.column("ts_us")), _TLS_WINDOW_US)
    keep = pc.fill_null(pc.and_(pc.equal(tt.column("peer"), d.column("relay")), near), False)
    def tls(name: str) -> pa.ChunkedArray:
        return pc.if_else(keep, tt.column(name), pa.scalar(None, tt.column(name).type))
    return pa.table({
        "msg_id": d.column("msg_id"), "seq": d.column("seq"), "ts": d.column("ts"), "recipient": d.column("rcpt"),
        "orig_recipient": d.column("orig_rcpt"), "transport": d.column("daemon"), "instance": d.column("instance"),
        "relay": d.column("relay"), "delay": d.column("delay"), "delay_before_queue": d.column("delay_before_queue"),
        "delay_in_queue": d.column("delay_in_queue"), "delay_connect": d.column("delay_connect"),
        "delay_transmit": d.column("delay_transmit"), "dsn": d.column("dsn"), "status": d.column("status"),
        "response": d.column("response"), "code": d.column("code"),
        "tls_protocol": tls("tls_protocol"), "tls_trust": tls("tls_trust"), "tls_cipher": tls("tls_cipher"),
        "link_kind": d.column("link_kind"), "child_qid": d.column("child_qid"), "host": d.column("host"),
    })


def _merge_recipients(con: duckdb.DuckDBPyConnection) -> None:
    """Per recipient: the latest attempt's status and how many attempts there were."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE rcpt_batch AS
        SELECT msg_id, recipient, coalesce(orig_recipient, '') AS orig_key, any_value(orig_recipient) AS orig_recipient,
               -- the latest attempt's values as they are: arg_max would skip its NULLs (no TLS, no reply)
               max(ts) AS ts, min(ts) AS first_ts, arg_max_null(status, seq) AS status, arg_max_null(dsn, seq) AS dsn,
               arg_max_null(relay, seq) AS relay, arg_max_null(delay, seq) AS delay, count(*)::INTEGER AS attempts,
               arg_max_null(response, seq) AS response, arg_max_null(tls_protocol, seq) AS tls,
               arg_max_null(transport, seq) AS transport
        FROM att_batch GROUP BY msg_id, recipient, coalesce(orig_recipient, '');

        CREATE OR REPLACE TEMP TABLE rcpt_old AS
        SELECT r.* FROM recipients r
        WHERE r.msg_id IN (SELECT open_id FROM qev WHERE open_id IS NOT NULL)
          AND r.msg_id IN (SELECT msg_id FROM rcpt_batch);

        DELETE FROM recipients WHERE msg_id IN (SELECT DISTINCT msg_id FROM rcpt_old);
        INSERT INTO recipients BY NAME
        SELECT b.msg_id, b.recipient, coalesce(b.orig_recipient, o.orig_recipient) AS orig_recipient, b.ts,
               coalesce(o.first_ts, b.first_ts) AS first_ts, b.status, b.dsn, b.relay, b.delay,
               b.attempts + coalesce(o.attempts, 0) AS attempts, b.response, b.tls, b.transport
        FROM rcpt_batch b
        LEFT JOIN rcpt_old o ON o.msg_id = b.msg_id AND o.recipient = b.recipient
                             AND coalesce(o.orig_recipient, '') = b.orig_key;
        INSERT INTO recipients BY NAME
        SELECT o.* FROM rcpt_old o ANTI JOIN rcpt_batch b
            ON o.msg_id = b.msg_id AND o.recipient = b.recipient AND coalesce(o.orig_recipient, '') = b.orig_key;

        -- qmgr returned the message to its sender: recipients still deferred have expired
        UPDATE recipients SET status = 'expired', ts = m.expired_ts
        FROM msg_batch m
        WHERE recipients.msg_id = m.msg_id AND m.expired_ts IS NOT NULL AND recipients.status = 'deferred';
    """)


def _write_rejects_links_lines(con: duckdb.DuckDBPyConnection, source_name: str, link_window: float) -> None:
    con.execute("""
        INSERT INTO rejects BY NAME
        SELECT r.seq, r.ts, r.host, r.qid AS queue_id, r.msg_id, r.daemon, r.action, r.stage, r.client_host, r.client_ip,
               r.code, r.dsn, r.response, r.sender, r.rcpt AS recipient, r.proto, r.helo, r.line
        FROM cev_reject r;
        INSERT INTO rejects BY NAME
        SELECT h.seq, h.ts, h.host, h.qid AS queue_id, h.msg_id, h.daemon, h.action, h.stage, h.client_host, h.client_ip,
               NULL AS code, h.dsn, h.response, h.sender, h.rcpt AS recipient, NULL AS proto, h.helo, h.line
        FROM cev_header_action h WHERE h.msg_id IS NOT NULL AND h.action = 'reject';
        INSERT INTO lines SELECT * FROM cev_lines;
    """)
    con.execute("""
        INSERT INTO unparsed SELECT seq, ts, host, ?, reason, line FROM ev_not_parsed WHERE kind IN ('unparsed', 'unknown')
    """, [source_name])
    # Children: the latest instance of the child queue ID on the same host started before the link line.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE link_batch AS
        SELECT n.msg_id AS parent_msg_id, n.host, n.child_qid, n.link_kind AS kind, n.ts, n.seq
        FROM cev_notify n WHERE n.msg_id IS NOT NULL
        UNION ALL
        SELECT msg_id, host, child_qid, 'content filter', ts, seq FROM att_batch WHERE child_qid IS NOT NULL;

        CREATE OR REPLACE TEMP TABLE link_candidates AS
        SELECT host, qid, seq, msg_id, ts FROM qev WHERE starts
        UNION ALL SELECT host, queue_id, first_seq, msg_id, last_ts FROM open_msgs;

        INSERT INTO links
        SELECT l.parent_msg_id,
               CASE WHEN l.kind <> 'content filter' OR epoch(l.ts - c.ts) <= {link_window} THEN c.msg_id END,
               l.host, l.child_qid, l.kind, l.ts
        FROM link_batch l ASOF LEFT JOIN link_candidates c
            ON c.host = l.host AND c.qid = l.child_qid AND l.seq >= c.seq
        WHERE l.kind <> 'content filter' OR (c.msg_id IS NOT NULL AND epoch(l.ts - c.ts) <= {link_window});
    """)


def _close_and_evict(con: duckdb.DuckDBPyConnection, config: CorrelatorConfig) -> dict[str, int]:
    """Bound the open state: close instances unseen for too long, then the oldest beyond the cap."""
    expire = float(config.expire_after_seconds)
    expired = con.execute(f"""
        UPDATE messages SET open = false
        WHERE open AND epoch((SELECT max(ts) FROM ev1) - last_ts) > {expire}
    """).fetchall()[0][0]
    n_open = con.execute("SELECT count(*) FROM messages WHERE open").fetchall()[0][0]
    over = max(0, n_open - config.max_open_messages)
    if over:
        con.execute(f"""
            UPDATE messages SET open = false WHERE msg_id IN (
                SELECT msg_id FROM messages WHERE open ORDER BY last_ts, msg_id LIMIT {over})
        """)
    return {"expired": int(expired), "capacity": int(over)}


def _count_lines(con: duckdb.DuckDBPyConnection, evicted: dict[str, int]) -> None:
    skipped = ", ".join(f"'{k}'" for k in SKIPPED_KINDS)
    con.execute(f"""
        INSERT INTO line_counts
        SELECT ts::DATE, host, 'kind', kind, count(*) FROM ev1 GROUP BY ALL
        UNION ALL
        SELECT ts::DATE, host, CASE WHEN kind IN ({skipped}) THEN 'skipped'
                                    WHEN kind = 'warning' THEN 'warning' ELSE 'unparsed' END,
               CASE WHEN kind = 'other_program' THEN 'other_program:' || daemon ELSE reason END, count(*)
        FROM ev_not_parsed GROUP BY ALL
        UNION ALL
        SELECT ts::DATE, host, 'postscreen', verdict, count(*) FROM ev_postscreen GROUP BY ALL
        UNION ALL
        SELECT ts::DATE, host, 'sasl_failed', coalesce(sasl_method, ''), count(*) FROM ev_sasl_failed GROUP BY ALL
    """)
    day = con.execute("SELECT max(ts)::DATE FROM ev1").fetchall()[0][0]
    for reason, n in evicted.items():
        if n:
            con.execute("INSERT INTO line_counts VALUES (?, NULL, 'evicted', ?, ?)", [day, reason, n])
