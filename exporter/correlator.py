"""Correlator stage: parsed events -> message instances, their delivery attempts, rejects
and links (the store makes the per-recipient delivery records from them).

Works in bulk, one batch at a time, inside the store's transaction. Its open state is the
store itself (`messages.open`, `pid_tls`), so a crash never leaves it out of step with the
rows written, and a restart resumes exactly where the last commit left off.

A message instance is keyed by (host, queue ID) and ends at `removed`; Postfix reuses
short queue IDs, so an origin line (smtpd client=, pickup) or a line after `removed` starts a
new instance, and so does a gap longer than `expire_after_seconds`.

`prepare` does the part that needs only the batch (run in the read-ahead thread, beside the
previous batch's correlation); `correlate` joins it to the open state and writes the rows.
"""
from __future__ import annotations

import email.header
import functools
import re
from collections.abc import Callable
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


_decode_cached = functools.lru_cache(maxsize=1 << 16)(decode_subject)  # subjects repeat

_MESSAGE_KINDS = pa.array(MESSAGE_KINDS, pa.string())


@dataclass(frozen=True)
class Segments:
    """What the batch alone says about its message instances, worked out ahead (in the
    read-ahead thread) so that the main thread only has to join it to the open state.

    Per (host, queue ID) -- a group -- in line order, a line starts a *segment* when it is
    the group's first line, an origin (smtpd client=, pickup), follows `removed`, or comes
    over `expire_after_seconds` after the line before. Every segment is a new instance except
    perhaps a group's first, which may continue the group's open instance (`_assign` decides).
    Segments are numbered by their first line; rows are ev1 rows (the batch's seq from 0)."""
    q: pa.Table                        # the message lines: seq, ts, host, qid, kind, instance
    group: np.ndarray                  # per q row: its group (index into keys)
    seg: np.ndarray                    # per q row: its segment
    cut: np.ndarray                    # per q row: starts its segment
    keys: pa.Array                     # per group: "host\0queue ID"
    seg_group: np.ndarray              # per segment: its group
    seg_head: np.ndarray               # per segment: the group's first
    seg_origin: np.ndarray             # per segment: its first line is an origin
    seg_first_us: np.ndarray           # per segment: time of its first line (us)
    facts: pa.Table                    # per segment: msg_batch's columns but msg_id (seq from 0)
    family_seg: dict[str, np.ndarray]  # per row of each _CEV family: its segment, -1 if none


# families whose rows the correlator needs with their instance: as cev_<family> (ev_<family> + msg_id)
_CEV = ("client", "pickup", "message_id", "header_action", "queue", "info", "dkim", "delivery", "reject", "notify")
_CEV_SQL = ("header_action", "reject", "notify")  # registered: the ones SQL reads (the rest go on as Arrow)


def _keys(host: pa.ChunkedArray | pa.Array, qid: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    wide = pa.large_string()
    joined = pc.binary_join_element_wise(pc.cast(pc.fill_null(host, ""), wide), pc.cast(qid, wide),
                                         pa.scalar("\x00", wide))
    return joined if isinstance(joined, pa.ChunkedArray) else pa.chunked_array([joined], wide)


def prepare(ev1: pa.Table, families: dict[str, pa.Table], config: CorrelatorConfig) -> Segments:
    """The batch's segments and their facts, from the parser's tables alone (no store)."""
    expire = float(config.expire_after_seconds)
    is_msg = pc.and_(pc.is_valid(ev1.column("qid")), pc.is_in(ev1.column("kind"), value_set=_MESSAGE_KINDS))
    q = ev1.select(["seq", "ts", "host", "qid", "kind", "instance"]).filter(is_msg)
    n = q.num_rows
    enc = _keys(q.column("host"), q.column("qid")).combine_chunks().dictionary_encode()
    group = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    ts = pc.cast(q.column("ts"), pa.int64()).to_numpy(zero_copy_only=False)
    kind = q.column("kind")
    origin = _bools(pc.is_in(kind, value_set=pa.array(["client", "pickup"])))
    removed = _bools(pc.equal(kind, "removed"))
    order = np.argsort(group, kind="stable")  # rows come in line order: by group, then line
    g, t = group[order], ts[order]
    first = np.ones(n, bool)
    first[1:] = g[1:] != g[:-1]
    prev_t = np.empty(n, np.int64)
    prev_t[1:] = t[:-1]
    prev_removed = np.zeros(n, bool)
    prev_removed[1:] = removed[order][:-1]
    cut_sorted = first | origin[order] | prev_removed | ((t - prev_t) / 1e6 > expire)
    cut = np.empty(n, bool)
    cut[order] = cut_sorted
    head = np.empty(n, bool)
    head[order] = first
    # each row's segment: the rank (in line order) of the latest cut at or before it in its group
    rank = np.cumsum(cut) - 1
    pos = np.where(cut_sorted, np.arange(n), 0)
    seg = np.empty(n, np.int64)
    seg[order] = rank[order][np.maximum.accumulate(pos)] if n else pos
    starts_at = np.flatnonzero(cut)
    nseg = len(starts_at)
    rows = q.column("seq").to_numpy(zero_copy_only=False)  # ev1 rows: the batch's seq counts from 0
    seg_of_row = np.full(ev1.num_rows, -1, np.int64)
    seg_of_row[rows] = seg
    family_seg = {f: seg_of_row[families[f].column("seq").to_numpy(zero_copy_only=False)] for f in _CEV}
    return Segments(
        q=q, group=group, seg=seg, cut=cut, keys=enc.dictionary,
        seg_group=group[starts_at], seg_head=head[starts_at], seg_origin=origin[starts_at],
        seg_first_us=ts[starts_at],
        facts=_facts(q, seg, nseg, families, family_seg), family_seg=family_seg)


def correlate(con: duckdb.DuckDBPyConnection, config: CorrelatorConfig, next_msg_id: int,
              source_name: str, batch: dict[str, pa.Table], segments: Segments,
              first_seq: int, rows_to: Callable[[str, pa.Table], None] | None = None) -> tuple[int, BatchResult]:
    """Fold the batch (the parser's tables as registered by parser.load, and its `segments`)
    into the store. Its rows of the SIDE_TABLES (raw lines, delivery attempts) go to
    `rows_to(table, rows)` as soon as they are known, when given, else into their tables
    here. Returns the next free msg_id."""
    write = rows_to or functools.partial(write_rows, con)
    expire = float(config.expire_after_seconds)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE open_msgs AS
        SELECT msg_id, host, queue_id, last_ts, first_seq FROM messages WHERE open""")
    seg_msg, starts, qev = _assign(con, segments, next_msg_id, expire, first_seq)
    con.register("qev", qev)  # scanned in place, like the parser's tables
    cev = _with_msg_ids(con, batch, segments, seg_msg, qev)
    write("lines", cev["lines"])
    new_ids = (next_msg_id, next_msg_id + int(np.count_nonzero(starts)) - 1)  # of the instances starting here
    _merge_messages(con, _msg_batch(segments, seg_msg, first_seq), new_ids)
    write("attempts", _attempts(con, cev["delivery"], batch["ev_tls"]))
    _write_rejects_links(con, source_name, config.link_window_seconds)
    result = BatchResult()
    result.evicted = _close_and_evict(con, config)
    _count_lines(con, result.evicted)
    result.messages = len(seg_msg)
    return new_ids[1] + 1, result  # its registered Arrow tables go with parser.drop_batch_tables


def _assign(con: duckdb.DuckDBPyConnection, segs: Segments, next_msg_id: int, expire: float,
            first_seq: int) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    """Each segment's instance: a group's first segment continues the group's open instance
    unless it starts with an origin or comes over `expire` seconds after the instance's last
    line; every other segment is a new instance (msg_ids in order of first line). Where an
    open (host, queue ID) is not unique (lines that arrived out of order can leave that), the
    one seen last takes the lines. Returns msg_id and `starts` per segment, and qev: each
    message line with its instance (msg_id), whether it starts one (`starts`, with its
    `new_id`) and the open instance of its group (`open_id`)."""
    o = con.sql("SELECT msg_id, host, queue_id, epoch_us(last_ts) AS last_us FROM open_msgs").to_arrow_table()
    ogid = pc.fill_null(pc.index_in(_keys(o.column("host"), o.column("queue_id")), value_set=segs.keys), -1)
    ogid = ogid.to_numpy(zero_copy_only=False).astype(np.int64)
    here = ogid >= 0
    ogid = ogid[here]
    oid = o.column("msg_id").to_numpy(zero_copy_only=False)[here]
    olast = o.column("last_us").to_numpy(zero_copy_only=False)[here]
    if len(np.unique(ogid)) != len(ogid):
        order = np.lexsort((oid, olast, ogid))
        keep = np.ones(len(order), bool)
        keep[:-1] = ogid[order][1:] != ogid[order][:-1]
        ogid, oid, olast = ogid[order[keep]], oid[order[keep]], olast[order[keep]]
    open_id = np.full(len(segs.keys), -1, np.int64)
    open_last = np.zeros(len(segs.keys), np.int64)
    open_id[ogid] = oid
    open_last[ogid] = olast
    sg = segs.seg_group
    seg_open = open_id[sg]
    continues = segs.seg_head & (seg_open >= 0) & ~segs.seg_origin & \
        ((segs.seg_first_us - open_last[sg]) / 1e6 <= expire)
    starts = ~continues
    seg_msg = np.where(starts, next_msg_id - 1 + np.cumsum(starts), seg_open)
    msg_id = seg_msg[segs.seg]
    row_starts = segs.cut & starts[segs.seg]
    new_id = np.where(row_starts, msg_id, -1)
    row_open = open_id[segs.group]
    q = segs.q
    qev = pa.table({
        "seq": pc.add(q.column("seq"), pa.scalar(first_seq, pa.int64())), "ts": q.column("ts"),
        "host": q.column("host"), "qid": q.column("qid"), "kind": q.column("kind"), "instance": q.column("instance"),
        "open_id": pa.array(row_open, mask=row_open < 0),
        "starts": pa.array(row_starts),
        "new_id": pa.array(new_id, mask=new_id < 0),
        "msg_id": pa.array(msg_id),
    })
    return seg_msg, starts, qev


def _with_msg_ids(con: duckdb.DuckDBPyConnection, batch: dict[str, pa.Table], segs: Segments,
                  seg_msg: np.ndarray, qev: pa.Table) -> dict[str, pa.Table]:
    """cev_<family>: the family's rows with the msg_id of their line (NULL when not a message
    line), so that the merges below group by it instead of joining qev on seq. Returned by
    family, and registered for those SQL reads (_CEV_SQL); with "lines": every line of the
    batch with its instance (NULL when none), for the lines table, which keeps the message
    lines without a copy of the batch's text made first."""
    cev: dict[str, pa.Table] = {}
    for family in _CEV:
        at = segs.family_seg[family]
        ids = np.where(at >= 0, seg_msg[at], -1) if len(seg_msg) else np.full(len(at), -1, np.int64)
        cev[family] = batch[f"ev_{family}"].append_column("msg_id", pa.array(ids, mask=ids < 0))
        if family in _CEV_SQL:
            con.register(f"cev_{family}", cev[family])
    ev1 = batch["ev1"]
    ids = np.full(ev1.num_rows, -1, np.int64)
    ids[segs.q.column("seq").to_numpy()] = qev.column("msg_id").to_numpy()  # q's seq: its ev1 row
    cev["lines"] = pa.table({"msg_id": pa.array(ids, mask=ids < 0), "seq": ev1.column("seq"),
                             "ts": ev1.column("ts"), "line": batch["batch_in"].column("line")})
    return cev


# Tables whose rows may be written from a transaction of their own: nothing later in a batch
# reads them back (the metrics take its attempts from att_batch), and every row has the seq of
# its line. The statement that writes a batch's rows from the Arrow table side_rows:
SIDE_TABLES = {
    "lines": "INSERT INTO lines SELECT * FROM side_rows WHERE msg_id IS NOT NULL",  # cev_lines: every line
    "attempts": "INSERT INTO attempts BY NAME SELECT * FROM side_rows",
}


def write_rows(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    """A batch's rows of one of the SIDE_TABLES into it."""
    con.register("side_rows", rows)
    try:
        con.execute(SIDE_TABLES[table])
    finally:
        con.unregister("side_rows")


_I64_MAX = np.iinfo(np.int64).max
_ACTIONS = pa.array(["reject", "discard", "hold"], pa.string())


def _bools(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(bool)


def _msg_batch(segs: Segments, seg_msg: np.ndarray, first_seq: int) -> pa.Table:
    """msg_batch: the segments' facts with their msg_ids and store-wide seq numbers, by msg_id."""
    facts = segs.facts
    for name in ("first_seq", "last_seq"):
        at = facts.schema.get_field_index(name)
        facts = facts.set_column(at, name, pc.add(facts.column(at), pa.scalar(first_seq, pa.int64())))
    facts = facts.add_column(0, "msg_id", pa.array(seg_msg, pa.int64()))
    return facts.take(pa.array(np.argsort(seg_msg, kind="stable")))


def _facts(q: pa.Table, seg: np.ndarray, m: int, families: dict[str, pa.Table],
           family_seg: dict[str, np.ndarray]) -> pa.Table:
    """Per segment, what its lines of this batch say: the first or last row with a value (of
    the family that carries it, in line order) and min/max times."""

    def in_line_order(family: str) -> tuple[pa.Table, np.ndarray]:
        table, pos = families[family], family_seg[family]
        seq = table.column("seq").to_numpy(zero_copy_only=False)
        if len(seq) > 1 and not bool(np.all(seq[1:] > seq[:-1])):
            order = np.argsort(seq, kind="stable")
            table, pos = table.take(pa.array(order)), pos[order]
        return table, pos

    def valid(col: pa.ChunkedArray) -> np.ndarray:
        return np.asarray(col.is_valid()) if col.null_count else np.ones(len(col), bool)

    def row_of(pos: np.ndarray, ok: np.ndarray, last: bool) -> np.ndarray:
        """Per segment, its first (last) row where ok; -1 when none."""
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
        """min or max of a timestamp column per segment, over the rows where ok."""
        col = table.column(name)
        mask = valid(col) & (pos >= 0) if ok is None else ok & valid(col) & (pos >= 0)
        values = pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False)[mask]
        acc = np.full(m, _I64_MAX if fn is np.minimum else np.iinfo(np.int64).min, np.int64)
        fn.at(acc, pos[mask], values)
        seen = np.zeros(m, bool)
        seen[pos[mask]] = True
        return pc.cast(pa.array(acc, mask=~seen), col.type)

    everything = np.ones(q.num_rows, bool)
    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    first = row_of(seg, everything, False)
    out["host"] = q.column("host").take(pa.array(first))
    out["queue_id"] = q.column("qid").take(pa.array(first))
    out["instance"] = pick(q, seg, "instance", last=False)
    out["first_ts"] = extreme(q, seg, "ts", None, np.minimum)
    out["last_ts"] = extreme(q, seg, "ts", None, np.maximum)
    seq = q.column("seq").to_numpy(zero_copy_only=False)
    out["first_seq"] = pa.array(seq[first])
    out["last_seq"] = pa.array(seq[row_of(seg, everything, True)])
    removed = np.zeros(m, bool)
    removed[seg[_bools(pc.equal(q.column("kind"), "removed"))]] = True
    out["removed"] = pa.array(removed)

    client, cpos = in_line_order("client")
    pickup, ppos = in_line_order("pickup")
    origin = pick(client, cpos, "service")
    picked_up = np.zeros(m, bool)
    picked_up[ppos[ppos >= 0]] = True
    out["origin"] = pc.coalesce(origin, pc.if_else(pa.array(picked_up), pa.scalar("pickup", origin.type),
                                                   pa.scalar(None, origin.type)))
    for name in ("client_host", "client_ip", "sasl_method", "sasl_user"):
        out[name] = pick(client, cpos, name)
    mid, mpos = in_line_order("message_id")
    out["message_id"] = pick(mid, mpos, "message_id", _bools(pc.equal(mid.column("kind"), "message_id")), last=False)
    head, hpos = in_line_order("header_action")
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
    queue, qd = in_line_order("queue")
    queued = _bools(pc.equal(queue.column("kind"), "queued"))
    qmgr_sender = pick(queue, qd, "sender", last=False)
    out["sender"] = pc.coalesce(qmgr_sender, pick(pickup, ppos, "sender"))
    out["qmgr_sender"] = qmgr_sender
    out["size"] = pick(queue, qd, "size", queued, last=False)
    out["nrcpt"] = pick(queue, qd, "nrcpt", queued, last=False)
    out["queued_ts"] = extreme(queue, qd, "ts", queued, np.minimum)
    out["expired_ts"] = extreme(queue, qd, "ts", _bools(pc.equal(queue.column("kind"), "expired")), np.maximum)
    info, ipos = in_line_order("info")
    held = extreme(info, ipos, "ts", _bools(pc.equal(info.column("kind"), "hold")), np.maximum)
    released = extreme(info, ipos, "ts", _bools(pc.equal(info.column("kind"), "release")), np.maximum)
    out["held_ts"] = pc.if_else(pc.fill_null(pc.greater_equal(released, held), False), pa.scalar(None, held.type), held)
    out["released_ts"] = released
    acted = _bools(pc.is_in(head.column("action"), value_set=_ACTIONS))
    out["action"] = pick(head, hpos, "action", acted)
    out["action_ts"] = extreme(head, hpos, "ts", acted, np.maximum)
    dkim, dpos = in_line_order("dkim")
    signed = _bools(pc.equal(dkim.column("kind"), "dkim_sign"))
    out["dkim_domain"] = pick(dkim, dpos, "dkim_domain", signed)
    out["dkim_selector"] = pick(dkim, dpos, "dkim_selector", signed)
    out["dkim_result"] = pick(dkim, dpos, "dkim_result", _bools(pc.equal(dkim.column("kind"), "dkim_verify")))
    return pa.table(out)


def _merge_messages(con: duckdb.DuckDBPyConnection, msg_batch: pa.Table, new_ids: tuple[int, int]) -> None:
    """This batch's facts per instance (`msg_batch`), merged into the instances already stored.
    The instances `new_ids` (first and last msg_id) start in this batch: they go in as they are."""
    new = f"msg_id BETWEEN {new_ids[0]} AND {new_ids[1]}"
    con.register("msg_batch", msg_batch)
    con.execute(f"""
        -- instances replaced by a new one with the same queue ID in this batch
        CREATE OR REPLACE TEMP TABLE superseded AS
        SELECT DISTINCT o.msg_id FROM open_msgs o JOIN qev q ON q.host = o.host AND q.qid = o.queue_id
        WHERE q.starts AND q.msg_id <> o.msg_id;

        -- the instances continued from an earlier batch: their stored (open) row merged with
        -- the batch's facts, in place of it
        CREATE OR REPLACE TEMP TABLE msg_cont AS
        SELECT {_MERGED}
        FROM (SELECT * FROM msg_batch WHERE NOT {new}) b JOIN (SELECT * FROM messages WHERE open) m USING (msg_id);
        DELETE FROM messages WHERE open AND msg_id IN (SELECT msg_id FROM msg_cont);
        INSERT INTO messages BY NAME SELECT * FROM msg_cont;

        -- the instances starting here, as they are (m all NULL)
        INSERT INTO messages BY NAME
        SELECT {_MERGED}
        FROM (SELECT * FROM msg_batch WHERE {new}) b LEFT JOIN (SELECT * FROM messages WHERE false) m ON false;
        UPDATE messages SET open = false WHERE open AND msg_id IN (SELECT msg_id FROM superseded);
    """)


# An instance's row from its stored row m (all NULL for a new instance) and the batch's facts b
_MERGED = """
    b.msg_id, b.host, b.queue_id, coalesce(m.instance, b.instance) AS instance,
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
    NOT (coalesce(m.removed, false) OR b.removed) AS open"""


_TLS_WINDOW_US = 600 * 1_000_000


def _attempts(con: duckdb.DuckDBPyConnection, delivery: pa.Table, ev_tls: pa.Table) -> pa.Table:
    """Delivery lines (cev_delivery), each with the TLS handshake its process logged just
    before it (matched in numpy): this batch's handshakes or the latest of an earlier one.
    Registered as att_batch (which also keeps the links' columns); returns the attempts rows.
    pid_tls moves on to this batch's latest handshakes."""
    seen = ev_tls.select(list(_PID_TLS))
    # Arrow, not a temp table: the matching reads it as Arrow, and the pid_tls statement in place
    tls_seen = pa.concat_tables([seen, con.sql("SELECT * FROM pid_tls").to_arrow_table().cast(seen.schema)])
    con.register("tls_seen", tls_seen)
    att = _attempts_numpy(delivery, tls_seen)
    con.register("att_batch", att)
    con.execute("""
        DELETE FROM pid_tls;
        INSERT INTO pid_tls
        SELECT host, pid, max(seq), arg_max(ts, seq), arg_max(peer, seq), arg_max(tls_direction, seq),
               arg_max(tls_protocol, seq), arg_max(tls_trust, seq), arg_max(tls_cipher, seq)
        FROM tls_seen
        WHERE ts >= (SELECT max(ts) FROM tls_seen) - INTERVAL 10 MINUTE
        GROUP BY host, pid;
    """)
    con.unregister("tls_seen")
    return att.drop_columns(["link_kind", "child_qid", "host"])


# pid_tls's columns, in its order (schema.py)
_PID_TLS = ("host", "pid", "seq", "ts", "peer", "tls_direction", "tls_protocol", "tls_trust", "tls_cipher")


def _attempts_numpy(delivery: pa.Table, tls_seen: pa.Table) -> pa.Table:
    """The SQL's ASOF join in numpy: for each delivery line, the latest outgoing TLS handshake
    (before it) of the same process (host, pid) in `tls_seen`, kept when its peer is the
    delivery's relay and it is at most 600 s older."""
    d = delivery.filter(pc.is_valid(delivery.column("msg_id")))
    outgoing = pc.and_(pc.equal(tls_seen.column("tls_direction"), "to"),
                       pc.and_(pc.is_valid(tls_seen.column("host")), pc.is_valid(tls_seen.column("pid"))))
    t = tls_seen.filter(pc.fill_null(outgoing, False)).select(
        ["host", "pid", "seq", "ts", "peer", "tls_protocol", "tls_trust", "tls_cipher"])
    t = t.set_column(3, "ts_us", pc.cast(t.column("ts"), pa.int64()))
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


def _write_rejects_links(con: duckdb.DuckDBPyConnection, source_name: str, link_window: float) -> None:
    con.execute("""
        INSERT INTO rejects BY NAME
        SELECT r.seq, r.ts, r.host, r.qid AS queue_id, r.msg_id, r.daemon, r.action, r.stage, r.client_host, r.client_ip,
               r.code, r.dsn, r.response, r.sender, r.rcpt AS recipient, r.proto, r.helo, r.line
        FROM cev_reject r;
        INSERT INTO rejects BY NAME
        SELECT h.seq, h.ts, h.host, h.qid AS queue_id, h.msg_id, h.daemon, h.action, h.stage, h.client_host, h.client_ip,
               NULL AS code, h.dsn, h.response, h.sender, h.rcpt AS recipient, NULL AS proto, h.helo, h.line
        FROM cev_header_action h WHERE h.msg_id IS NOT NULL AND h.action = 'reject';
    """)
    con.execute("""
        INSERT INTO unparsed SELECT seq, ts, host, ?, reason, line FROM ev_not_parsed WHERE kind IN ('unparsed', 'unknown')
    """, [source_name])
    # Children: the latest instance of the child queue ID on the same host started before the link line
    # (a join and arg_max: half the time of DuckDB's ASOF join on these few rows).
    con.execute(f"""
        INSERT INTO links
        WITH link_batch AS (
            SELECT n.msg_id AS parent_msg_id, n.host, n.child_qid, n.link_kind AS kind, n.ts, n.seq
            FROM cev_notify n WHERE n.msg_id IS NOT NULL
            UNION ALL
            SELECT msg_id, host, child_qid, 'content filter', ts, seq FROM att_batch WHERE child_qid IS NOT NULL),
        -- only instances of a child queue ID: the join then meets a few rows, not every start
        link_candidates AS (
            SELECT host, qid, seq, msg_id, ts FROM qev WHERE starts AND qid IN (SELECT child_qid FROM link_batch)
            UNION ALL SELECT host, queue_id, first_seq, msg_id, last_ts FROM open_msgs
            WHERE queue_id IN (SELECT child_qid FROM link_batch))
        SELECT parent_msg_id, CASE WHEN kind <> 'content filter' OR epoch(ts - c_ts) <= {link_window} THEN c_id END,
               host, child_qid, kind, ts
        FROM (SELECT l.parent_msg_id, l.host, l.child_qid, l.kind, l.ts,
                     arg_max(c.msg_id, c.seq) AS c_id, arg_max(c.ts, c.seq) AS c_ts
              FROM link_batch l LEFT JOIN link_candidates c
                  ON c.host = l.host AND c.qid = l.child_qid AND c.seq <= l.seq
              GROUP BY l.seq, l.parent_msg_id, l.host, l.child_qid, l.kind, l.ts)
        WHERE kind <> 'content filter' OR (c_id IS NOT NULL AND epoch(ts - c_ts) <= {link_window});
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
