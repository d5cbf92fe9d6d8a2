"""Read-side queries over the store: search, trace, stats. Every user value is a bound parameter."""
from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

import duckdb
from pydantic import BaseModel, ConfigDict, Field, field_validator

from datasource_api.models import check_dsn, parse_time
from exporter.records import DELIVERY_RECORD_KEYS, iso_utc
from exporter.store import records

__all__ = ["SearchFilter", "parse_time", "search", "stats", "trace", "values"]

def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SearchFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient: str | None = None
    sender: str | None = None
    domain: str | None = Field(None, description="recipient domain")
    sender_domain: str | None = None
    subject: str | None = Field(None, description="case-insensitive substring")
    queue_id: str | None = None
    message_id: str | None = None
    client_ip: str | None = None
    status: list[str] = Field(default_factory=list)
    dsn: str | None = Field(None, description="DSN or prefix such as 5.1")
    relay: str | None = None
    host: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_delay: float | None = None
    limit: int = Field(100, ge=1, le=100_000)

    _dsn = field_validator("dsn")(classmethod(lambda cls, v: check_dsn(v)))

    @field_validator("since", "until", mode="before")
    @classmethod
    def _time(cls, v: Any) -> Any:
        return None if v is None else parse_time(v)

    def where(self) -> tuple[str, list[Any]]:
        """One WHERE clause over delivery_records and its parameters."""
        sql, params = self._where()
        if self.recipient:
            sql += " AND (lower(recipient) = lower(?) OR lower(orig_recipient) = lower(?))"
            params += [self.recipient, self.recipient]
        return sql, params

    def where_variants(self) -> list[tuple[str, list[Any]]]:
        """The filter as disjoint clauses to UNION: a recipient matches the final or the original
        recipient, and an OR between two columns keeps DuckDB from stopping a top-N scan early."""
        sql, params = self._where()
        if not self.recipient:
            return [(sql, params)]
        return [(sql + " AND lower(recipient) = lower(?)", params + [self.recipient]),
                (sql + " AND lower(orig_recipient) = lower(?) AND lower(recipient) IS DISTINCT FROM lower(?)",
                 params + [self.recipient, self.recipient])]

    def _where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []

        def add(sql: str, *values: Any) -> None:
            clauses.append(sql)
            params.extend(values)

        if self.sender is not None:
            add("lower(sender) = lower(?)", self.sender.strip("<>"))
        if self.domain:
            add("rcpt_domain = ?", self.domain.lower().lstrip("@"))
        if self.sender_domain:
            add("sender_domain = ?", self.sender_domain.lower().lstrip("@"))
        if self.subject:
            add("subject ILIKE ? ESCAPE '\\'", "%" + like_escape(self.subject) + "%")
        if self.queue_id:
            add("queue_id = ?", self.queue_id)
        if self.message_id:
            add("message_id = ?", self.message_id.strip().strip("<>"))
        if self.client_ip:
            add("client_ip = ?", self.client_ip)
        if self.status:
            add(f"status IN ({', '.join('?' for _ in self.status)})", *self.status)
        if self.dsn:
            exact = self.dsn.count(".") == 2 and not self.dsn.endswith(".")
            if exact:
                add("dsn = ?", self.dsn)
            else:
                add("(dsn = ? OR dsn LIKE ? ESCAPE '\\')", self.dsn.rstrip("."), like_escape(self.dsn.rstrip(".")) + ".%")
        if self.relay:
            add("relay ILIKE ? ESCAPE '\\'", "%" + like_escape(self.relay) + "%")
        if self.host:
            add("host = ?", self.host)
        if self.since:
            add("time >= ?", self.since)
        if self.until:
            add("time < ?", self.until)
        if self.min_delay is not None:
            add("delay_seconds >= ?", self.min_delay)
        return (" AND ".join(clauses) or "TRUE"), params


SORTS = {  # sort name -> (SQL key, descending); a plain column lets DuckDB skip row groups in a top-N
    "-time": ("time", True),   # never NULL (exporter/store/schema.py)
    "time": ("time", False),
    "-delay": ("coalesce(delay_seconds, -1.0)", True),
    "delay": ("coalesce(delay_seconds, -1.0)", False),
}


def _record(row: tuple) -> dict[str, Any]:
    rec = dict(zip(DELIVERY_RECORD_KEYS, row))
    if rec["time"] is not None:
        rec["time"] = iso_utc(rec["time"])
    return rec


def encode_cursor(sort: str, key: Any, rk: int) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    raw = json.dumps([sort, value, rk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    """The sort key and row key after which the next page starts."""
    try:
        got_sort, value, rk = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if got_sort != sort or not isinstance(rk, int) or isinstance(rk, bool):
            raise ValueError
        key = datetime.fromisoformat(value) if sort.endswith("time") else float(value)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ValueError("cursor is not one this endpoint gave out with this sort order") from None
    return key, rk


def search(con: duckdb.DuckDBPyConnection, flt: SearchFilter, sort: str = "-time",
           cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of delivery records, newest first by default. Returns the records and the
    cursor of the next page (None on the last one). Keyset paging: a page boundary stays put
    while ingest adds newer rows."""
    key_sql, desc = SORTS[sort]
    op, order = ("<", "DESC") if desc else (">", "ASC")
    after: list[Any] = []
    page = ""
    if cursor:
        key, rk = decode_cursor(cursor, sort)
        page = f" AND ({key_sql} {op} ? OR ({key_sql} = ? AND rk {op} ?))"
        after = [key, key, rk]
    cols = ", ".join(DELIVERY_RECORD_KEYS)
    parts, params = [], []
    for where, values in flt.where_variants():
        parts.append(f"(SELECT {cols}, {key_sql} AS sk, rk FROM delivery_records WHERE {where}{page} "
                     f"ORDER BY sk {order}, rk {order} LIMIT ?)")
        params += [*values, *after, flt.limit + 1]
    sql = parts[0] if len(parts) == 1 else \
        f"SELECT * FROM ({' UNION ALL '.join(parts)}) ORDER BY sk {order}, rk {order} LIMIT ?"
    rows = con.execute(sql, params if len(parts) == 1 else [*params, flt.limit + 1]).fetchall()
    more = len(rows) > flt.limit
    rows = rows[:flt.limit]
    next_cursor = encode_cursor(sort, rows[-1][-2], rows[-1][-1]) if more and rows else None
    return [_record(r[:-2]) for r in rows], next_cursor


def trace(con: duckdb.DuckDBPyConnection, queue_id: str, host: str | None = None) -> list[dict[str, Any]]:
    """Every instance of the queue ID (Postfix reuses them; newest first), each with the
    instances linked to it (bounce notices, content-filter hops), their recipients with every
    attempt, and all their raw lines in order."""
    params: list[Any] = [queue_id]
    host_sql = ""
    if host:
        host_sql = " AND host = ?"
        params.append(host)
    # a plain equality is answered from the queue_id index; an ORDER BY here would scan instead
    found = con.execute(f"SELECT msg_id, first_seq FROM messages WHERE queue_id = ?{host_sql}", params).fetchall()
    ids = [msg_id for msg_id, _ in sorted(found, key=lambda r: -r[1])][:100]
    return [_trace_one(con, msg_id) for msg_id in ids]


def _linked(con: duckdb.DuckDBPyConnection, msg_id: int) -> dict[int, str]:
    """The instance and every instance linked to it, transitively, with their role."""
    roles = {msg_id: "this"}
    frontier = [msg_id]
    while frontier and len(roles) < 1000:
        rows = [row for mid in frontier for row in _link_rows(con, mid)]
        nxt = []
        for _, parent, child, _, _ in rows:
            if child is None:
                continue
            for other, role in ((child, "child"), (parent, "parent")):
                if other not in roles:
                    near = parent if role == "child" else child
                    roles[other] = role if roles.get(near) == "this" else "linked"
                    nxt.append(other)
        frontier = nxt
    return roles


def _link_rows(con: duckdb.DuckDBPyConnection, msg_id: int) -> list[tuple]:
    """Links from and to one instance: (kind, parent, child, child queue ID, time). Two
    equalities, not an OR, so that DuckDB prunes row groups."""
    return con.execute("""
        SELECT kind, parent_msg_id, child_msg_id, child_queue_id, ts FROM links WHERE parent_msg_id = ?
        UNION ALL
        SELECT kind, parent_msg_id, child_msg_id, child_queue_id, ts FROM links WHERE child_msg_id = ?""",
        [msg_id, msg_id]).fetchall()


def _iso(ts: datetime | None) -> str | None:
    return iso_utc(ts) if ts is not None else None


def _value(v: Any) -> Any:
    if isinstance(v, datetime):
        return iso_utc(v)
    return None if isinstance(v, float) and v != v else v  # NaN (an empty division) is no value


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any]) -> list[dict[str, Any]]:
    """Rows as dicts, times as ISO 8601 UTC."""
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [{k: _value(v) for k, v in zip(names, row)} for row in cur.fetchall()]


def _each(con: duckdb.DuckDBPyConnection, sql: str, ids: list[int]) -> list[dict[str, Any]]:
    """`sql` (with one `msg_id = ?`) run once per id: DuckDB prunes row groups by an equality,
    not by an IN list, which would scan the whole lines table."""
    return [row for msg_id in ids for row in _rows(con, sql, [msg_id])]


def _trace_one(con: duckdb.DuckDBPyConnection, msg_id: int) -> dict[str, Any]:
    roles = _linked(con, msg_id)
    ids = sorted(roles)
    messages = sorted(_each(con, """
        SELECT msg_id, first_seq, host, queue_id, coalesce(queued_ts, first_ts) AS time, first_ts AS first_time,
               last_ts AS last_time, sender, message_id, subject, client_host, client_ip, sasl_user, size, nrcpt,
               origin, dkim_domain, dkim_result,
               CASE WHEN expired_ts IS NOT NULL THEN 'expired' WHEN removed THEN 'removed' ELSE 'open' END AS status
        FROM messages WHERE msg_id = ?""", ids), key=lambda m: m.pop("first_seq"))
    order = {m["msg_id"]: n for n, m in enumerate(messages)}
    qid = {m["msg_id"]: m["queue_id"] for m in messages}
    this = next(m for m in messages if m["msg_id"] == msg_id)
    by_rcpt: dict[tuple, list[dict[str, Any]]] = {}
    for a in _each(con, """
            SELECT msg_id, recipient, coalesce(orig_recipient, '') AS orig_key, ts AS time, status, dsn, relay,
                   delay AS delay_seconds, response, tls_protocol AS tls
            FROM attempts WHERE msg_id = ? ORDER BY seq""", ids):
        by_rcpt.setdefault((a.pop("msg_id"), a.pop("recipient"), a.pop("orig_key")), []).append(a)
    rcpts = _each(con, f"""
        SELECT msg_id, recipient, orig_recipient, status, dsn, relay, delay_seconds, response, tls
        FROM delivery_records WHERE msg_id = ? AND {records.IS_RECIPIENT}""", ids)
    for r in rcpts:
        r["attempts"] = by_rcpt.get((r["msg_id"], r["recipient"], r["orig_recipient"] or ""), [])
    # by instance, then by first attempt
    rcpts.sort(key=lambda r: (order.get(r["msg_id"], 0), r["attempts"][0]["time"] if r["attempts"] else "",
                              r["recipient"] or ""))
    recipients = [{"queue_id": qid.get(r.pop("msg_id")), **r} for r in rcpts]
    seen: set[tuple] = set()
    link_rows = [r for mid in ids for r in _link_rows(con, mid) if not (r in seen or seen.add(r))]
    links = [{"kind": kind, "parent_queue_id": qid.get(parent), "child_queue_id": qid.get(child, child_qid),
              "time": _iso(ts)}
             for kind, parent, child, child_qid, ts in sorted(link_rows, key=lambda r: r[4])]
    # the raw lines, and reject lines not already among them, in log order
    raw = {r["seq"]: r for r in _each(con, "SELECT seq, ts AS time, msg_id, line FROM lines WHERE msg_id = ?", ids)}
    for r in _each(con, "SELECT seq, ts AS time, msg_id, line FROM rejects WHERE msg_id = ? AND daemon <> 'cleanup'",
                   ids):
        raw.setdefault(r["seq"], r)
    lines = [{"time": r["time"], "queue_id": qid.get(r["msg_id"]), "line": r["line"]}
             for _, r in sorted(raw.items())]
    instances = [{"msg_id": m["msg_id"], "queue_id": m["queue_id"], "host": m["host"], "role": roles[m["msg_id"]],
                  "first_time": m["first_time"], "last_time": m["last_time"], "sender": m["sender"],
                  "subject": m["subject"]} for m in messages]
    message = {k: this[k] for k in ("time", "first_time", "last_time", "sender", "message_id", "subject", "client_host",
                                     "client_ip", "sasl_user", "size", "nrcpt", "origin", "dkim_domain", "dkim_result",
                                     "status")}
    return {"msg_id": msg_id, "host": this["host"], "queue_id": this["queue_id"], "message": message,
            "recipients": recipients, "links": links, "instances": instances, "lines": lines}


_VALUE_SQL = {  # field -> (expression, source)
    "domain": ("rcpt_domain", "rcpt_domain IS NOT NULL"),
    "sender_domain": ("sender_domain", "sender_domain IS NOT NULL"),
    "host": ("host", "host IS NOT NULL"),
    "status": ("status", "status IS NOT NULL"),
    "dsn": ("dsn", "dsn IS NOT NULL"),
    "relay": ("split_part(relay, '[', 1)", "relay IS NOT NULL AND relay <> 'none'"),
    "sender": ("sender", "sender IS NOT NULL AND sender <> ''"),
    "recipient": ("recipient", "recipient IS NOT NULL"),
}


def values(con: duckdb.DuckDBPyConnection, field: str, prefix: str | None, since: datetime | None,
           until: datetime | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Distinct values of a field, most frequent first (Grafana template variables)."""
    expr, present = _VALUE_SQL[field]
    rng, params = _range("time", since, until)
    pre = ""
    if prefix:
        pre = f" AND starts_with(lower({expr}), lower(?))"
        params.append(prefix)
    rows = con.execute(
        f"""SELECT {expr} AS v, count(*) AS n FROM delivery_records WHERE {present} AND {rng}{pre}
            GROUP BY 1 HAVING v <> '' ORDER BY 2 DESC, 1 LIMIT ?""", [*params, limit + 1]).fetchall()
    return [{"value": v, "count": n} for v, n in rows[:limit]], len(rows) > limit


def stats(con: duckdb.DuckDBPyConnection, since: datetime | None = None, until: datetime | None = None,
          top: int = 10, host: str | None = None, domain: str | None = None) -> dict[str, Any]:
    """The summary: records by status and rates, received messages, top domains, DSNs, line
    counts. `host` and `domain` narrow the records (and `host` the received messages)."""
    rng, params = SearchFilter(since=since, until=until, host=host, domain=domain).where()
    by_status = dict(con.execute(
        f"SELECT status, count(*) FROM delivery_records WHERE {rng} GROUP BY 1 ORDER BY 2 DESC", params).fetchall())
    mrng, mparams = messages_range("coalesce(queued_ts, first_ts)", since, until, host)
    received = con.execute(
        f"SELECT count(*), coalesce(sum(size), 0) FROM messages WHERE queued_ts IS NOT NULL AND {mrng}", mparams).fetchall()[0]
    final = sum(by_status.get(s, 0) for s in ("sent", "bounced", "deferred", "expired"))
    rates = {f"{s}_rate": (by_status.get(s, 0) / final if final else None) for s in ("sent", "bounced", "deferred", "expired")}
    domains = [dict(zip(["domain", "records", "sent", "deferred", "bounced", "rejected"], r)) for r in con.execute(
        f"""SELECT rcpt_domain AS domain, count(*),
                   count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'deferred'),
                   count(*) FILTER (WHERE status IN ('bounced', 'expired')), count(*) FILTER (WHERE status = 'rejected')
            FROM delivery_records WHERE rcpt_domain IS NOT NULL AND {rng} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?""",
        [*params, top]).fetchall()]
    dsn = [dict(zip(["dsn", "status", "records"], r)) for r in con.execute(
        f"""SELECT dsn, status, count(*) FROM delivery_records WHERE dsn IS NOT NULL AND {rng}
            GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT ?""", [*params, top * 3]).fetchall()]
    drng, dparams = _range("day", since.date() if since else None, until.date() if until else None)
    lines = [dict(zip(["category", "name", "lines"], r)) for r in con.execute(
        f"""SELECT category, name, sum(n)::BIGINT FROM line_counts
            WHERE category IN ('unparsed', 'skipped', 'anomaly', 'evicted', 'warning') AND {drng}
            GROUP BY 1, 2 ORDER BY 1, 3 DESC""", dparams).fetchall()]
    total_lines = con.execute(
        f"SELECT coalesce(sum(n), 0)::BIGINT FROM line_counts WHERE category = 'kind' AND {drng}", dparams).fetchall()[0][0]
    return {
        "since": iso_utc(since) if since else None, "until": iso_utc(until) if until else None,
        "lines": total_lines, "messages_received": received[0], "bytes_received": int(received[1]),
        "records": sum(by_status.values()), "by_status": by_status, **rates,
        "top_domains": domains, "dsn": dsn, "line_counts": lines,
    }


def messages_range(col: str, since: Any, until: Any, host: str | None) -> tuple[str, list[Any]]:
    """Filter on the messages table (received mail has no recipient domain to filter by)."""
    sql, params = _range(col, since, until)
    if host:
        sql += " AND host = ?"
        params.append(host)
    return sql, params


def _range(col: str, since: Any, until: Any) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if since is not None:
        clauses.append(f"{col} >= ?")
        params.append(since)
    if until is not None:
        clauses.append(f"{col} < ?")
        params.append(until)
    return (" AND ".join(clauses) or "TRUE"), params
