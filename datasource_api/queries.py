"""Read-side queries over the store: search, trace, stats. Every user value is a bound parameter."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
from pydantic import BaseModel, ConfigDict, Field, field_validator

from exporter.records import DELIVERY_RECORD_KEYS, iso_utc

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DSN = re.compile(r"^[245](\.\d{1,3}){0,2}\.?$")


def parse_time(value: str | int | float | datetime, now: datetime | None = None) -> datetime:
    """ISO 8601, epoch milliseconds (Grafana's ${__timeFrom}), or a relative age like '24h' / '7d'."""
    now = now or datetime.now(timezone.utc)
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        ts = datetime.fromtimestamp(int(value) / 1000, timezone.utc)
    else:
        text = value.strip()
        m = _RELATIVE.match(text)
        if m:
            ts = now - timedelta(seconds=float(m[1]) * _UNITS[m[2]])
        elif text == "now":
            ts = now
        else:
            try:
                ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError as exc:
                raise ValueError(f"not a time: {value!r} (use ISO 8601, epoch ms, or an age like 24h)") from exc
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).replace(tzinfo=None)


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

    @field_validator("dsn")
    @classmethod
    def _dsn_shape(cls, v: str | None) -> str | None:
        if v is not None and not _DSN.match(v):
            raise ValueError("dsn must look like 5, 5.1 or 5.1.1")
        return v

    @field_validator("since", "until", mode="before")
    @classmethod
    def _time(cls, v: Any) -> Any:
        return None if v is None else parse_time(v)

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []

        def add(sql: str, *values: Any) -> None:
            clauses.append(sql)
            params.extend(values)

        if self.recipient:
            add("(lower(recipient) = lower(?) OR lower(orig_recipient) = lower(?))", self.recipient, self.recipient)
        if self.sender is not None:
            add("lower(sender) = lower(?)", self.sender.strip("<>"))
        if self.domain:
            add("lower(recipient) LIKE ? ESCAPE '\\'", "%@" + like_escape(self.domain.lower().lstrip("@")))
        if self.sender_domain:
            add("lower(sender) LIKE ? ESCAPE '\\'", "%@" + like_escape(self.sender_domain.lower().lstrip("@")))
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


def _record(row: tuple) -> dict[str, Any]:
    rec = dict(zip(DELIVERY_RECORD_KEYS, row))
    if rec["time"] is not None:
        rec["time"] = iso_utc(rec["time"])
    return rec


def search(con: duckdb.DuckDBPyConnection, flt: SearchFilter) -> list[dict[str, Any]]:
    where, params = flt.where()
    cols = ", ".join(DELIVERY_RECORD_KEYS)
    rows = con.execute(
        f"SELECT {cols} FROM delivery_records WHERE {where} "
        "ORDER BY time DESC NULLS LAST, host, queue_id, recipient LIMIT ?",
        [*params, flt.limit]).fetchall()
    return [_record(r) for r in rows]


def trace(con: duckdb.DuckDBPyConnection, queue_id: str, host: str | None = None) -> list[dict[str, Any]]:
    """Every instance of the queue ID (newest first), each with its linked instances and raw lines."""
    params: list[Any] = [queue_id]
    host_sql = ""
    if host:
        host_sql = " AND host = ?"
        params.append(host)
    ids = [r[0] for r in con.execute(
        f"SELECT msg_id FROM messages WHERE queue_id = ?{host_sql} ORDER BY first_seq DESC", params).fetchall()]
    return [_trace_one(con, msg_id) for msg_id in ids]


def _linked(con: duckdb.DuckDBPyConnection, msg_id: int) -> list[int]:
    """The instance and every instance linked to it, transitively (bounce notices, filter hops)."""
    seen = {msg_id}
    frontier = [msg_id]
    while frontier:
        marks = ", ".join("?" for _ in frontier)
        rows = con.execute(
            f"""SELECT child_msg_id FROM links WHERE parent_msg_id IN ({marks}) AND child_msg_id IS NOT NULL
                UNION SELECT parent_msg_id FROM links WHERE child_msg_id IN ({marks})""",
            frontier + frontier).fetchall()
        frontier = [r[0] for r in rows if r[0] not in seen]
        seen.update(frontier)
    return sorted(seen)


def _trace_one(con: duckdb.DuckDBPyConnection, msg_id: int) -> dict[str, Any]:
    ids = _linked(con, msg_id)
    marks = ", ".join("?" for _ in ids)
    msg_cols = ["msg_id", "host", "queue_id", "instance", "first_ts", "last_ts", "origin", "client_host", "client_ip",
                "sasl_user", "message_id", "subject", "sender", "size", "nrcpt", "removed", "expired_ts", "dkim_domain",
                "dkim_result", "open"]
    messages = [dict(zip(msg_cols, r)) for r in con.execute(
        f"SELECT {', '.join(msg_cols)} FROM messages WHERE msg_id IN ({marks}) ORDER BY first_seq", ids).fetchall()]
    att_cols = ["msg_id", "ts", "recipient", "orig_recipient", "transport", "relay", "delay", "dsn", "status",
                "response", "tls_protocol"]
    attempts = [dict(zip(att_cols, r)) for r in con.execute(
        f"SELECT {', '.join(att_cols)} FROM attempts WHERE msg_id IN ({marks}) ORDER BY seq", ids).fetchall()]
    links = [dict(zip(["parent_msg_id", "child_msg_id", "child_queue_id", "kind", "ts"], r)) for r in con.execute(
        f"""SELECT parent_msg_id, child_msg_id, child_queue_id, kind, ts FROM links
            WHERE parent_msg_id IN ({marks}) OR child_msg_id IN ({marks}) ORDER BY ts""", ids + ids).fetchall()]
    lines = [dict(zip(["msg_id", "seq", "ts", "line"], r)) for r in con.execute(
        f"""SELECT msg_id, seq, ts, line FROM lines WHERE msg_id IN ({marks})
            UNION ALL SELECT msg_id, seq, ts, line FROM rejects WHERE msg_id IN ({marks}) AND daemon <> 'cleanup'
              AND seq NOT IN (SELECT seq FROM lines WHERE msg_id IN ({marks}))
            ORDER BY seq""", ids + ids + ids).fetchall()]
    qids = {m["msg_id"]: m["queue_id"] for m in messages}
    for item in (*attempts, *lines):
        item["queue_id"] = qids.get(item["msg_id"])
    return {"msg_id": msg_id, "messages": messages, "attempts": attempts, "links": links, "lines": lines}


def stats(con: duckdb.DuckDBPyConnection, since: datetime | None = None, until: datetime | None = None,
          top: int = 10) -> dict[str, Any]:
    rng, params = _range("time", since, until)
    by_status = dict(con.execute(
        f"SELECT status, count(*) FROM delivery_records WHERE {rng} GROUP BY 1 ORDER BY 2 DESC", params).fetchall())
    mrng, mparams = _range("coalesce(queued_ts, first_ts)", since, until)
    received = con.execute(
        f"SELECT count(*), coalesce(sum(size), 0) FROM messages WHERE queued_ts IS NOT NULL AND {mrng}", mparams).fetchall()[0]
    final = sum(by_status.get(s, 0) for s in ("sent", "bounced", "deferred", "expired"))
    rates = {f"{s}_rate": (by_status.get(s, 0) / final if final else None) for s in ("sent", "bounced", "deferred", "expired")}
    domains = [dict(zip(["domain", "records", "sent", "deferred", "bounced", "rejected"], r)) for r in con.execute(
        f"""SELECT lower(split_part(recipient, '@', 2)) AS domain, count(*),
                   count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'deferred'),
                   count(*) FILTER (WHERE status IN ('bounced', 'expired')), count(*) FILTER (WHERE status = 'rejected')
            FROM delivery_records WHERE recipient LIKE '%@%' AND {rng} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?""",
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


def _range(col: str, since: Any, until: Any) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if since is not None:
        clauses.append(f"{col} >= ?")
        params.append(since)
    if until is not None:
        clauses.append(f"{col} < ?")
        params.append(until)
    return (" AND ".join(clauses) or "TRUE"), params
