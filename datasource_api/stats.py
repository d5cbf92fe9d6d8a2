"""Delivery-health statistics and annotations over the store, as rows for the API.

Every statistic of recipients reads the same `delivery_records` table as the message search,
with the same filter code, so a number on a chart and the rows a click opens agree.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb

from datasource_api.queries import SearchFilter, _rows, messages_range
from datasource_api.queries import stats as summary_stats
from exporter.records import iso_utc

MAX_BUCKETS = 5000
FINAL = "('sent', 'deferred', 'bounced', 'expired')"
DOMAIN = "rcpt_domain"


@dataclass
class StatsQuery:
    since: datetime
    until: datetime
    interval: timedelta
    host: str | None = None
    domain: str | None = None
    limit: int = 10
    threshold_seconds: float = 300

    def where(self) -> tuple[str, list[Any]]:
        """The message search's own filter over delivery_records."""
        return SearchFilter(host=self.host, domain=self.domain, since=self.since, until=self.until).where()

    def messages_where(self, col: str) -> tuple[str, list[Any]]:
        return messages_range(col, self.since, self.until, self.host)


def default_interval(since: datetime, until: datetime) -> timedelta:
    """About 100 buckets, at least a minute, in whole minutes."""
    minutes = max(1, -(-int((until - since).total_seconds()) // 6000))
    return timedelta(minutes=minutes)


def bucket_count(since: datetime, until: datetime, interval: timedelta) -> int:
    return int((until - since) / interval) + 1


def _series(q: StatsQuery, inner: str) -> str:
    """Wrap `inner` (grouped by bucket `t`) so that every bucket of the range has a row."""
    return f"""
        WITH buckets AS (
            SELECT unnest(generate_series(time_bucket($iv, $since::TIMESTAMP), $until::TIMESTAMP, $iv)) AS t),
        d AS ({inner})
        SELECT buckets.t AS time, d.* EXCLUDE (t) FROM buckets LEFT JOIN d USING (t)
        WHERE buckets.t < $until ORDER BY 1"""


def _bind(q: StatsQuery, params: list[Any]) -> dict[str, Any]:
    named = {"iv": q.interval, "since": q.since, "until": q.until}
    named.update({f"p{i}": v for i, v in enumerate(params)})
    return named


def _numbered(where: str, start: int = 0) -> str:
    """'a = ? AND b = ?' -> 'a = $p0 AND b = $p1' (the series SQL uses named parameters)."""
    parts = where.split("?")
    return "".join(p + (f"$p{start + i}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


def _zero(rows: list[dict[str, Any]], *cols: str) -> list[dict[str, Any]]:
    for row in rows:
        for c in cols:
            if row[c] is None:
                row[c] = 0
    return rows


def volume(con: duckdb.DuckDBPyConnection, q: StatsQuery) -> list[dict[str, Any]]:
    """Messages received (queued; not filtered by recipient domain) and recipient outcomes."""
    where, params = q.where()
    mwhere, mparams = q.messages_where("queued_ts")
    inner = f"""
        SELECT coalesce(r.t, o.t) AS t, coalesce(r.received, 0) AS received, o.* EXCLUDE (t) FROM (
            SELECT time_bucket($iv, queued_ts) AS t, count(*) AS received FROM messages
            WHERE queued_ts IS NOT NULL AND {_numbered(mwhere, len(params))} GROUP BY 1) r
        FULL JOIN (
            SELECT time_bucket($iv, time) AS t,
                   count(*) FILTER (WHERE status = 'sent') AS sent,
                   count(*) FILTER (WHERE status = 'deferred') AS deferred,
                   count(*) FILTER (WHERE status = 'bounced') AS bounced,
                   count(*) FILTER (WHERE status = 'expired') AS expired,
                   count(*) FILTER (WHERE status = 'rejected') AS rejected
            FROM delivery_records WHERE {_numbered(where)} GROUP BY 1) o ON o.t = r.t"""
    rows = _rows(con, _series(q, inner), _bind(q, params + mparams))
    return _zero(rows, "received", "sent", "deferred", "bounced", "expired", "rejected")


def rates(con: duckdb.DuckDBPyConnection, q: StatsQuery) -> list[dict[str, Any]]:
    where, params = q.where()
    inner = f"""
        SELECT time_bucket($iv, time) AS t,
               count(*) FILTER (WHERE status IN ('bounced', 'expired')) / nullif(count(*), 0) AS bounce_rate,
               count(*) FILTER (WHERE status = 'deferred') / nullif(count(*), 0) AS defer_rate,
               count(*) AS final
        FROM delivery_records WHERE status IN {FINAL} AND {_numbered(where)} GROUP BY 1"""
    return _zero(_rows(con, _series(q, inner), _bind(q, params)), "final")


def sla(con: duckdb.DuckDBPyConnection, q: StatsQuery) -> list[dict[str, Any]]:
    where, params = q.where()
    inner = f"""
        SELECT time_bucket($iv, time) AS t, count(*) AS delivered,
               count(*) FILTER (WHERE delay_seconds <= $threshold) AS within,
               count(*) FILTER (WHERE delay_seconds <= $threshold) / nullif(count(*), 0) AS share
        FROM delivery_records WHERE status = 'sent' AND {_numbered(where)} GROUP BY 1"""
    bound = _bind(q, params) | {"threshold": q.threshold_seconds}
    return _zero(_rows(con, _series(q, inner), bound), "delivered", "within")


def domains(con: duckdb.DuckDBPyConnection, q: StatsQuery) -> list[dict[str, Any]]:
    where, params = q.where()
    return _rows(con, f"""
        SELECT {DOMAIN} AS domain, count(*) AS records,
               count(*) FILTER (WHERE status = 'sent') AS sent,
               count(*) FILTER (WHERE status = 'deferred') AS deferred,
               count(*) FILTER (WHERE status IN ('bounced', 'expired')) AS bounced,
               count(*) FILTER (WHERE status = 'rejected') AS rejected,
               count(*) FILTER (WHERE status IN ('bounced', 'expired'))
                   / nullif(count(*) FILTER (WHERE status IN {FINAL}), 0) AS bounce_rate,
               count(*) FILTER (WHERE status = 'deferred')
                   / nullif(count(*) FILTER (WHERE status IN {FINAL}), 0) AS defer_rate
        FROM delivery_records WHERE rcpt_domain IS NOT NULL AND {where}
        GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?""", [*params, q.limit])


def slow_domains(con: duckdb.DuckDBPyConnection, q: StatsQuery) -> list[dict[str, Any]]:
    where, params = q.where()
    return _rows(con, f"""
        SELECT domain, deliveries, q[1] AS p50_delay_seconds, q[2] AS p95_delay_seconds, max_delay_seconds FROM (
            SELECT {DOMAIN} AS domain, count(*) AS deliveries,
                   -- both quantiles from one sort per domain
                   quantile_cont(delay_seconds, [0.5, 0.95]) AS q, max(delay_seconds) AS max_delay_seconds
            FROM delivery_records
            WHERE status = 'sent' AND delay_seconds IS NOT NULL AND rcpt_domain IS NOT NULL AND {where}
            GROUP BY 1)
        ORDER BY 4 DESC, 2 DESC, 1 LIMIT ?""", [*params, q.limit])


def dsn(con: duckdb.DuckDBPyConnection, q: StatsQuery) -> list[dict[str, Any]]:
    where, params = q.where()
    return _rows(con, f"""
        SELECT {DOMAIN} AS domain, dsn, status, count(*) AS records
        FROM delivery_records WHERE dsn IS NOT NULL AND {where}
        GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2 LIMIT ?""", [*params, q.limit])


def rejects(con: duckdb.DuckDBPyConnection, q: StatsQuery) -> list[dict[str, Any]]:
    where, params = q.where()
    return _rows(con, f"""
        SELECT reason,
               CASE WHEN regexp_matches(response, '^[245][0-9][0-9]') THEN left(response, 3) END AS code,
               count(*) AS records
        FROM delivery_records WHERE status = 'rejected' AND {where}
        GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT ?""", [*params, q.limit])


def tls_coverage(con: duckdb.DuckDBPyConnection, q: StatsQuery) -> list[dict[str, Any]]:
    where, params = q.where()
    return _rows(con, f"""
        SELECT {DOMAIN} AS domain, count(*) AS deliveries, count(tls) AS tls, count(tls) / count(*) AS share
        FROM delivery_records
        WHERE transport IN ('smtp', 'lmtp') AND status IN {FINAL} AND rcpt_domain IS NOT NULL AND {where}
        GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?""", [*params, q.limit])


def dkim(con: duckdb.DuckDBPyConnection, q: StatsQuery) -> list[dict[str, Any]]:
    mwhere, mparams = q.messages_where("queued_ts")
    inner = f"""
        SELECT time_bucket($iv, queued_ts) AS t, count(*) AS received, count(dkim_domain) AS signed,
               count(dkim_domain) / count(*) AS rate
        FROM messages WHERE queued_ts IS NOT NULL AND {_numbered(mwhere)} GROUP BY 1"""
    return _zero(_rows(con, _series(q, inner), _bind(q, mparams)), "received", "signed")


def heatmap(con: duckdb.DuckDBPyConnection, q: StatsQuery) -> list[dict[str, Any]]:
    """Delivery records by weekday (0 = Monday) and hour, every cell present."""
    where, params = q.where()
    return _rows(con, f"""
        WITH cells AS (SELECT w.weekday, h.hour FROM range(7) w(weekday), range(24) h(hour)),
        d AS (SELECT isodow(time) - 1 AS weekday, hour(time) AS hour, count(*) AS messages
              FROM delivery_records WHERE time IS NOT NULL AND {where} GROUP BY 1, 2)
        SELECT cells.weekday::INTEGER AS weekday, cells.hour::INTEGER AS hour, coalesce(d.messages, 0) AS messages
        FROM cells LEFT JOIN d ON d.weekday = cells.weekday AND d.hour = cells.hour ORDER BY 1, 2""", params)


def top_senders(con: duckdb.DuckDBPyConnection, q: StatsQuery) -> list[dict[str, Any]]:
    where, params = q.where()
    # distinct messages only for the top senders: counting them for every sender is the slow part
    return _rows(con, f"""
        WITH top AS (
            SELECT sender, count(*) AS recipients,
                   count(*) FILTER (WHERE status IN ('bounced', 'expired')) AS bounced,
                   count(*) FILTER (WHERE status = 'deferred') AS deferred
            FROM delivery_records WHERE sender IS NOT NULL AND sender <> '' AND {where}
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?),
        m AS (SELECT sender, count(DISTINCT msg_id) AS messages FROM delivery_records
              WHERE sender IN (SELECT sender FROM top) AND {where} GROUP BY 1)
        SELECT top.sender, m.messages, top.recipients, top.bounced, top.deferred
        FROM top JOIN m USING (sender) ORDER BY top.recipients DESC, top.sender""", [*params, q.limit, *params])


def top_recipients(con: duckdb.DuckDBPyConnection, q: StatsQuery) -> list[dict[str, Any]]:
    where, params = q.where()
    return _rows(con, f"""
        SELECT recipient, count(*) AS records,
               count(*) FILTER (WHERE status IN ('bounced', 'expired')) AS bounced,
               count(*) FILTER (WHERE status = 'deferred') AS deferred
        FROM delivery_records WHERE recipient IS NOT NULL AND {where}
        GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?""", [*params, q.limit])


def summary(con: duckdb.DuckDBPyConnection, q: StatsQuery) -> list[dict[str, Any]]:
    return [summary_stats(con, q.since, q.until, top=q.limit, host=q.host, domain=q.domain)]


STATS: dict[str, Callable[[duckdb.DuckDBPyConnection, StatsQuery], list[dict[str, Any]]]] = {
    "summary": summary, "volume": volume, "rates": rates, "sla": sla, "domains": domains,
    "slow-domains": slow_domains, "dsn": dsn, "rejects": rejects, "tls-coverage": tls_coverage, "dkim": dkim,
    "heatmap": heatmap, "top-senders": top_senders, "top-recipients": top_recipients,
}
# statistics drawn over time (the rest are tables)
SERIES = ("volume", "rates", "sla", "dkim")


def annotations(con: duckdb.DuckDBPyConnection, q: StatsQuery, kind: str | None, threshold: float,
                min_records: int) -> list[dict[str, Any]]:
    """Per-domain bounce or defer spikes: buckets at or over `threshold` with at least
    `min_records` final outcomes; consecutive buckets merge into one incident."""
    where, params = q.where()
    kinds = [kind] if kind else ["bounce", "defer"]
    rows = con.execute(f"""
        WITH b AS (
            SELECT {DOMAIN} AS domain, time_bucket(?, time) AS t, count(*) AS final,
                   count(*) FILTER (WHERE status IN ('bounced', 'expired')) AS bounce,
                   count(*) FILTER (WHERE status = 'deferred') AS defer
            FROM delivery_records WHERE status IN {FINAL} AND rcpt_domain IS NOT NULL AND {where} GROUP BY 1, 2),
        k AS (SELECT domain, t, 'bounce' AS kind, bounce AS n, final FROM b
              UNION ALL SELECT domain, t, 'defer', defer, final FROM b),
        hot AS (SELECT *, epoch(t) // ? - row_number() OVER (PARTITION BY domain, kind ORDER BY t) AS grp
                FROM k WHERE final >= ? AND n >= ? * final AND list_contains(?, kind))
        SELECT domain, kind, min(t), max(t) + ?, sum(n)::BIGINT, sum(final)::BIGINT
        FROM hot GROUP BY domain, kind, grp ORDER BY 3, 1, 2 LIMIT 1000""",
        [q.interval, *params, q.interval.total_seconds(), min_records, threshold, kinds, q.interval]).fetchall()
    out = []
    for domain, k, start, end, n, final in rows:
        rate = n / final
        verb = "bounced or expired" if k == "bounce" else "deferred"
        out.append({
            "time": iso_utc(start), "time_end": iso_utc(end),
            "title": f"{k.capitalize()} spike: {domain} {rate:.0%}",
            "text": f"{n} of {final} recipients at {domain} {verb} ({rate:.0%}) between {iso_utc(start)} and {iso_utc(end)}",
            "tags": ["postfix", k, domain], "domain": domain, "kind": k, "rate": round(rate, 4), "records": final,
        })
    return out
