"""Prometheus metrics: per-batch deltas kept in the store, served by a custom Collector.

Each batch adds its deltas to `metric_totals` in the batch's own transaction, so counters
survive restarts (no drop, no fake spike) and a crash never counts a line twice. The
Collector serves an in-memory snapshot of that table, refreshed after each commit, so a
scrape never touches the database.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import duckdb
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter.reasons import reason_sql
from exporter.store import records

PREFIX = "postfix_insights_"
DELAY_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400, 432000)
DELAY_STAGES = {"before_queue": "delay_before_queue", "in_queue": "delay_in_queue",
                "connect": "delay_connect", "transmit": "delay_transmit", "total": "delay"}

HELP = {
    "messages_received_total": "Messages queued by Postfix, by how they arrived (smtpd service, pickup, or Postfix itself) and Postfix instance (multi-instance setups: postfix-out, ...).",
    "lines_total": "Log lines read, by line kind the parser gave them.",
    "unparsed_lines_total": "Lines not turned into events, by reason (kept raw in the store).",
    "skipped_lines_total": "Lines deliberately skipped: other programs and Postfix noise.",
    "deliveries_total": "Delivery attempts (every to= line), by status, transport and DSN class.",
    "domain_deliveries_total": "Delivery attempts by recipient domain (top domains by volume, the rest as 'other') and status.",
    "deferrals_total": "Deferred delivery attempts by DSN and reason category.",
    "bounces_total": "Bounced or expired recipients by DSN and reason category.",
    "rejects_total": "SMTP-time and content-check rejects by SMTP code and reason category.",
    "postscreen_verdicts_total": "postscreen(8) verdicts and events.",
    "sasl_auth_failures_total": "Failed SASL authentications, by mechanism.",
    "tls_connections_total": "TLS handshakes logged, by direction (in/out), protocol and trust.",
    "outbound_deliveries_total": "Successful SMTP/LMTP deliveries, by whether the connection used TLS.",
    "dkim_signatures_total": "DKIM signatures added by opendkim, by signing domain.",
    "dkim_verifications_total": "DKIM verification results of opendkim (pass, fail, none).",
    "evictions_total": "Open message instances closed by the correlator's bounds (expired or over capacity).",
    "anomalies_total": "Lines with anomalies that were still parsed (invalid UTF-8, time going backwards).",
    "lines_read_total": "Lines read, per source (file name without rotation suffix, or intake).",
    "delivery_delay_seconds": "Delivery delay of each message once, at its removal, from its last final attempt, by stage.",
}


def install(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE IF NOT EXISTS metric_totals (name VARCHAR, labels VARCHAR, value DOUBLE);
        CREATE TABLE IF NOT EXISTS metric_domains (domain VARCHAR);
    """)


def record_batch(con: duckdb.DuckDBPyConnection, top_domains: int = 50) -> None:
    """Add this batch's deltas to metric_totals. Runs inside the batch's transaction, after the
    correlator, over its temp tables (ev, ev_<family>, att_batch, msg_batch)."""
    con.execute(f"""
        INSERT INTO metric_domains
        SELECT domain FROM (
            SELECT lower(split_part(recipient, '@', 2)) AS domain, count(*) AS n FROM att_batch
            WHERE recipient LIKE '%@%' GROUP BY 1)
        WHERE domain NOT IN (SELECT domain FROM metric_domains)
        ORDER BY n DESC, domain
        LIMIT greatest(0, {int(top_domains)} - (SELECT count(*) FROM metric_domains));
    """)
    # Every attempt of the instances removed or expired in this batch. This batch's are
    # att_batch's: the attempts table may not have them yet (a read file's are written from a
    # transaction of their own, which this one does not see). msg_ids only grow, so the range
    # filter lets DuckDB skip the older part of `attempts`.
    cols = "msg_id, seq, ts, recipient, orig_recipient, transport, relay, status, dsn, response, tls_protocol, " \
        + ", ".join(DELAY_STAGES.values())
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE metric_attempts AS
        WITH ended AS (SELECT msg_id FROM msg_batch WHERE removed OR expired_ts IS NOT NULL)
        SELECT {cols} FROM attempts
        WHERE seq < (SELECT min(seq) FROM ev1) AND msg_id >= (SELECT coalesce(min(msg_id), 0) FROM ended)
          AND msg_id IN (SELECT msg_id FROM ended)
        UNION ALL
        SELECT {cols} FROM att_batch WHERE msg_id IN (SELECT msg_id FROM ended)
    """)
    # each message once, when it is removed: the delays of its last sent/bounced attempt, long form
    stage_rows = " UNION ALL ".join(f"SELECT '{stage}' AS stage, {col} AS v FROM final" for stage, col in DELAY_STAGES.items())
    le_list = ", ".join(f"'{le}'" for le in DELAY_BUCKETS)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE metric_delays AS
        WITH final AS (
            SELECT arg_max(a.delay, a.seq) AS delay, arg_max(a.delay_before_queue, a.seq) AS delay_before_queue,
                   arg_max(a.delay_in_queue, a.seq) AS delay_in_queue, arg_max(a.delay_connect, a.seq) AS delay_connect,
                   arg_max(a.delay_transmit, a.seq) AS delay_transmit
            FROM metric_attempts a JOIN msg_batch b ON a.msg_id = b.msg_id
            WHERE b.removed AND a.status IN ('sent', 'bounced')
            GROUP BY a.msg_id
        )
        SELECT * FROM ({stage_rows}) WHERE v IS NOT NULL
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE metric_delta AS
        WITH d AS (
            SELECT 'delivery_delay_seconds_bucket' AS name, json_object('stage', stage, 'le', le) AS labels,
                   count(*) FILTER (WHERE v <= le::DOUBLE)::DOUBLE AS value
            FROM metric_delays CROSS JOIN (SELECT unnest([{le_list}]) AS le) GROUP BY ALL
            UNION ALL
            SELECT 'delivery_delay_seconds_count', json_object('stage', stage), count(*) FROM metric_delays GROUP BY ALL
            UNION ALL
            SELECT 'delivery_delay_seconds_sum', json_object('stage', stage), sum(v) FROM metric_delays GROUP BY ALL
            UNION ALL
            SELECT 'messages_received_total' AS name,
                   json_object('origin', coalesce(m.origin, 'postfix'), 'postfix_instance', coalesce(m.instance, '')) AS labels,
                   count(*)::DOUBLE AS value
            FROM msg_batch b JOIN messages m ON m.msg_id = b.msg_id
            WHERE b.queued_ts IS NOT NULL AND m.queued_ts = b.queued_ts
              AND m.msg_id >= (SELECT min(msg_id) FROM msg_batch) GROUP BY ALL
            UNION ALL
            SELECT 'lines_total', json_object('kind', kind), count(*) FROM ev1 GROUP BY ALL
            UNION ALL
            SELECT CASE WHEN kind IN ('other_program', 'noise') THEN 'skipped_lines_total' ELSE 'unparsed_lines_total' END,
                   json_object('reason', CASE WHEN kind = 'other_program' THEN 'other_program' ELSE reason END), count(*)
            FROM ev_not_parsed WHERE kind <> 'warning' GROUP BY ALL
            UNION ALL
            SELECT 'deliveries_total', json_object('status', coalesce(status, ''), 'transport', coalesce(transport, ''),
                                                   'dsn_class', coalesce(substr(dsn, 1, 1), '')), count(*)
            FROM att_batch GROUP BY ALL
            UNION ALL
            SELECT 'domain_deliveries_total',
                   json_object('domain', CASE WHEN d.domain IS NULL THEN 'other' ELSE d.domain END, 'status', coalesce(a.status, '')),
                   count(*)
            FROM att_batch a LEFT JOIN metric_domains d ON d.domain = lower(split_part(a.recipient, '@', 2)) GROUP BY ALL
            UNION ALL
            SELECT 'deferrals_total', json_object('dsn', coalesce(dsn, ''), 'reason', {reason_sql('response')}), count(*)
            FROM att_batch WHERE status = 'deferred' GROUP BY ALL
            UNION ALL
            SELECT 'bounces_total', json_object('dsn', coalesce(dsn, ''), 'reason', {reason_sql('response')}), count(*)
            FROM att_batch WHERE status = 'bounced' GROUP BY ALL
            UNION ALL
            SELECT 'bounces_total', json_object('dsn', coalesce(dsn, ''), 'reason', 'expired'), count(*)
            FROM ({records.recipients("SELECT * FROM metric_attempts",
                                      "SELECT msg_id, expired_ts FROM msg_batch WHERE expired_ts IS NOT NULL")})
            WHERE status = 'expired' GROUP BY ALL
            UNION ALL
            SELECT 'rejects_total', json_object('code', coalesce(code, ''), 'reason', {reason_sql('response')}), count(*)
            FROM ev_reject WHERE action IN ('reject', 'milter-reject') GROUP BY ALL
            UNION ALL
            SELECT 'rejects_total', json_object('code', '', 'reason', 'content'), count(*)
            FROM ev_header_action WHERE action = 'reject' GROUP BY ALL
            UNION ALL
            SELECT 'postscreen_verdicts_total', json_object('verdict', verdict), count(*) FROM ev_postscreen GROUP BY ALL
            UNION ALL
            SELECT 'sasl_auth_failures_total', json_object('method', coalesce(sasl_method, '')), count(*)
            FROM ev_sasl_failed GROUP BY ALL
            UNION ALL
            SELECT 'tls_connections_total',
                   json_object('direction', CASE WHEN tls_direction = 'to' THEN 'out' ELSE 'in' END,
                               'protocol', coalesce(tls_protocol, ''), 'trust', lower(coalesce(tls_trust, ''))), count(*)
            FROM ev_tls GROUP BY ALL
            UNION ALL
            SELECT 'outbound_deliveries_total', json_object('tls', CASE WHEN tls_protocol IS NULL THEN 'no' ELSE 'yes' END),
                   count(*)
            FROM att_batch WHERE status = 'sent' AND transport IN ('smtp', 'lmtp') AND relay LIKE '%[%]%'
              AND relay NOT LIKE '%[127.%' AND relay NOT LIKE '%[::1]%' GROUP BY ALL
            UNION ALL
            SELECT 'dkim_signatures_total', json_object('domain', coalesce(dkim_domain, '')), count(*)
            FROM ev_dkim WHERE kind = 'dkim_sign' GROUP BY ALL
            UNION ALL
            SELECT 'dkim_verifications_total', json_object('result', dkim_result), count(*)
            FROM ev_dkim WHERE kind = 'dkim_verify' GROUP BY ALL
        )
        SELECT name, labels::VARCHAR AS labels, sum(value) AS value FROM d GROUP BY ALL HAVING sum(value) <> 0;
    """)
    _apply(con)


def add(con: duckdb.DuckDBPyConnection, name: str, labels: dict[str, str], value: float) -> None:
    """A delta that is not derived from the batch tables (evictions, anomalies)."""
    if not value:
        return
    con.execute("CREATE OR REPLACE TEMP TABLE metric_delta AS SELECT ? AS name, ? AS labels, ?::DOUBLE AS value",
                [name, json.dumps(labels, separators=(",", ":")), value])
    _apply(con)


def _apply(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        UPDATE metric_totals SET value = metric_totals.value + d.value
        FROM metric_delta d WHERE metric_totals.name = d.name AND metric_totals.labels = d.labels;
        INSERT INTO metric_totals SELECT d.* FROM metric_delta d
        ANTI JOIN metric_totals t ON t.name = d.name AND t.labels = d.labels;
    """)


@dataclass
class Snapshot:
    """Counter totals as committed, plus gauges the service sets (lag, open IDs, queues)."""
    totals: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)
    gauges: dict[str, tuple[str, dict[tuple[tuple[str, str], ...], float]]] = field(default_factory=dict)
    # per queue, the size and age of each queued message at the last `postqueue -j` (kumina's showq)
    queue_sizes: dict[str, list[float]] = field(default_factory=dict)
    queue_ages: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        totals: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for name, labels, value in con.execute("SELECT name, labels, value FROM metric_totals").fetchall():
            key = tuple(sorted(json.loads(labels).items()))
            totals.setdefault(name, {})[key] = value
        with self.lock:
            self.totals = totals

    def set_gauge(self, name: str, help_text: str, values: dict[tuple[tuple[str, str], ...], float]) -> None:
        with self.lock:
            self.gauges[name] = (help_text, dict(values))


class StoreCollector(Collector):
    """Serves the snapshot: counters, the delay histogram, the TLS share, and gauges; with
    `kumina=True` also the names of kumina's postfix_exporter (community dashboard 10013)."""

    def __init__(self, snapshot: Snapshot, kumina: bool = False) -> None:
        self.snapshot = snapshot
        self.kumina = kumina

    def collect(self) -> Iterator[Metric]:
        with self.snapshot.lock:
            totals = {k: dict(v) for k, v in self.snapshot.totals.items()}
            gauges = dict(self.snapshot.gauges)
            showq = (dict(self.snapshot.queue_sizes), dict(self.snapshot.queue_ages))
        for short, help_text in HELP.items():
            if short == "delivery_delay_seconds":
                yield from self._histogram(totals)
                continue
            name = PREFIX + short.removesuffix("_total")
            series = totals.get(short, {})
            labelnames = sorted({k for key in series for k, _ in key})
            family = CounterMetricFamily(name, help_text, labels=labelnames)
            for key, value in sorted(series.items()):
                d = dict(key)
                family.add_metric([d.get(n, "") for n in labelnames], value)
            yield family
        out = totals.get("outbound_deliveries_total", {})
        done = sum(out.values())
        share = GaugeMetricFamily(PREFIX + "outbound_tls_ratio",
                                  "Share of successful outbound SMTP/LMTP deliveries that used TLS (0..1).")
        if done:
            share.add_metric([], out.get((("tls", "yes"),), 0.0) / done)
        yield share
        for name, (help_text, values) in sorted(gauges.items()):
            labelnames = sorted({k for key in values for k, _ in key})
            g = GaugeMetricFamily(PREFIX + name, help_text, labels=labelnames)
            for key, value in sorted(values.items()):
                d = dict(key)
                g.add_metric([d.get(n, "") for n in labelnames], value)
            yield g
        if self.kumina:
            yield from kumina_families(totals)
            yield from showq_histograms(*showq)

    @staticmethod
    def _histogram(totals: dict) -> Iterable[Metric]:
        hist = HistogramMetricFamily(PREFIX + "delivery_delay_seconds", HELP["delivery_delay_seconds"],
                                     labels=["stage"])
        buckets = totals.get("delivery_delay_seconds_bucket", {})
        counts = totals.get("delivery_delay_seconds_count", {})
        sums = totals.get("delivery_delay_seconds_sum", {})
        for stage in DELAY_STAGES:
            count = counts.get((("stage", stage),), 0.0)
            le_values = [(str(le), buckets.get((("le", str(le)), ("stage", stage)), 0.0)) for le in DELAY_BUCKETS]
            hist.add_metric([stage], le_values + [("+Inf", count)], sums.get((("stage", stage),), 0.0))
        yield hist


SHOWQ_SIZE_BUCKETS = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9)      # kumina's buckets
SHOWQ_AGE_BUCKETS = (1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)


def showq_histograms(sizes: dict[str, list[float]], ages: dict[str, list[float]]) -> Iterator[Metric]:
    """kumina's postfix_showq_message_{size_bytes,age_seconds}: the queue as it is now, one
    observation per queued message (so they go down as well as up, as kumina's do)."""
    for name, help_text, values, bounds in (
            ("postfix_showq_message_size_bytes", "kumina-compatible: size of messages in Postfix's queues.",
             sizes, SHOWQ_SIZE_BUCKETS),
            ("postfix_showq_message_age_seconds", "kumina-compatible: age of messages in Postfix's queues.",
             ages, SHOWQ_AGE_BUCKETS)):
        fam = HistogramMetricFamily(name, help_text, labels=["queue"])
        for queue, observed in sorted(values.items()):
            buckets = [(floatToGoString(b), float(sum(1 for v in observed if v <= b))) for b in bounds]
            fam.add_metric([queue], buckets + [("+Inf", float(len(observed)))], sum(observed))
        yield fam


# kumina postfix_exporter name -> (our total, label filter, their label from ours)
_KUMINA_FROM_KIND = {
    "postfix_smtpd_connects": "connect", "postfix_smtpd_disconnects": "disconnect",
    "postfix_qmgr_messages_removed": "removed", "postfix_qmgr_messages_expired": "expired",
    "postfix_cleanup_messages_processed": "message_id", "postfix_smtpd_lost_connections": "lost_connection",
    "postfix_smtp_connection_timed_out": "connect_failed",
}
_KUMINA_STAGES = {"before_queue": "before_queue_manager", "in_queue": "queue_manager",
                  "connect": "connection_setup", "transmit": "transmission"}


def _sum(series: dict, **want: str) -> float:
    return sum(v for key, v in series.items() if all(dict(key).get(k) == w for k, w in want.items()))


def kumina_families(totals: dict) -> Iterator[Metric]:
    """The same counts under kumina's names and labels, so dashboards built for it keep working.
    Unlike kumina, deferrals are counted and delays observe each message once."""
    kinds = totals.get("lines_total", {})
    for name, kind in _KUMINA_FROM_KIND.items():
        fam = CounterMetricFamily(name, f"kumina-compatible: lines of kind {kind}.",
                                  labels=["after_stage"] if name.endswith("lost_connections") else [])
        fam.add_metric([""] if name.endswith("lost_connections") else [], _sum(kinds, kind=kind))
        yield fam
    rejects = totals.get("rejects_total", {})
    fam = CounterMetricFamily("postfix_smtpd_messages_rejected", "kumina-compatible: SMTP-time rejects by code.",
                              labels=["code"])
    for code in sorted({dict(k).get("code", "") for k in rejects if dict(k).get("code")}):
        fam.add_metric([code], _sum(rejects, code=code))
    yield fam
    fam = CounterMetricFamily("postfix_cleanup_messages_rejected", "kumina-compatible: cleanup rejects.")
    fam.add_metric([], _sum(rejects, reason="content"))
    yield fam
    fam = CounterMetricFamily("postfix_smtpd_messages_processed", "kumina-compatible: smtpd client= lines.",
                              labels=["sasl_method"])
    fam.add_metric([""], _sum(kinds, kind="client"))
    yield fam
    fam = CounterMetricFamily("postfix_smtpd_sasl_authentication_failures", "kumina-compatible: SASL failures.")
    fam.add_metric([], sum(totals.get("sasl_auth_failures_total", {}).values()))
    yield fam
    deliveries = totals.get("deliveries_total", {})
    fam = CounterMetricFamily("postfix_smtp_deferred_messages", "kumina-compatible: deferred smtp deliveries.")
    fam.add_metric([], _sum(deliveries, status="deferred", transport="smtp"))
    yield fam
    tls = totals.get("tls_connections_total", {})
    for direction, name in (("out", "postfix_smtp_tls_connections"), ("in", "postfix_smtpd_tls_connections")):
        labels = ["trust", "protocol", "cipher", "secret_bits", "algorithm_bits"]
        fam = CounterMetricFamily(name, "kumina-compatible: TLS connections.", labels=labels)
        for key, value in sorted(tls.items()):
            d = dict(key)
            if d.get("direction") == direction:
                fam.add_metric([d.get("trust", "").capitalize(), d.get("protocol", ""), "", "", ""], value)
        yield fam
    fam = CounterMetricFamily("postfix_unsupported_log_entries", "kumina-compatible: lines not understood.",
                              labels=["service", "level"])
    for key, value in sorted(totals.get("unparsed_lines_total", {}).items()):
        fam.add_metric([dict(key).get("reason", ""), ""], value)
    yield fam
    fam = CounterMetricFamily("opendkim_signatures_added", "kumina-compatible: DKIM signatures added.",
                              labels=["subject", "domain"])
    for key, value in sorted(totals.get("dkim_signatures_total", {}).items()):
        fam.add_metric(["", dict(key).get("domain", "")], value)
    yield fam
    up = GaugeMetricFamily("postfix_up", "kumina-compatible: 1 while logs are being read.", labels=["path"])
    up.add_metric([""], 1.0)
    yield up
    hist = HistogramMetricFamily("postfix_smtp_delivery_delay_seconds",
                                 "kumina-compatible: delivery delay by stage (each message once).", labels=["stage"])
    buckets = totals.get("delivery_delay_seconds_bucket", {})
    for ours, theirs in _KUMINA_STAGES.items():
        count = totals.get("delivery_delay_seconds_count", {}).get((("stage", ours),), 0.0)
        le_values = [(str(le), buckets.get((("le", str(le)), ("stage", ours)), 0.0)) for le in DELAY_BUCKETS]
        hist.add_metric([theirs], le_values + [("+Inf", count)],
                        totals.get("delivery_delay_seconds_sum", {}).get((("stage", ours),), 0.0))
    yield hist
