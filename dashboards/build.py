"""Writes the Grafana dashboards in this folder: `python dashboards/build.py`.

Plain Python (no dependency) so the JSON stays reviewable and regenerable; the JSON files are
what Grafana provisions, and tests/test_dashboards.py checks they match this script's output.
Edit here, run it, commit both.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 41
Json = dict[str, Any]

# uids fixed in provisioning/datasources/postfix-insights.yaml
PROM_UID = "postfix-insights-prometheus"
INFINITY_UID = "postfix-insights-infinity"
PLUGIN_UID = "postfix-insights"  # as in grafana-plugin/provisioning
PROM = {"type": "prometheus", "uid": "${datasource}"}
INFINITY = {"type": "yesoreyeram-infinity-datasource", "uid": "${infinity}"}
PLUGIN = {"type": "postfixinsights-messages-datasource", "uid": "${pidatasource}"}

STATUSES = ["sent", "deferred", "bounced", "expired", "rejected", "pending", "held", "discarded"]
STATUS_COLOURS = {"sent": "green", "deferred": "orange", "bounced": "red", "expired": "dark-red",
                  "rejected": "purple", "pending": "blue", "held": "yellow", "discarded": "text"}

# where links go (uid, slug); slugs are Grafana's slug of the title
SEARCH = "/d/postfix-search/message-search"
TRACE = "/d/postfix-trace/message-trace"
TIME = "${__url_time_range}"


# ---- building blocks ---------------------------------------------------------------------

class Grid:
    """Places panels left to right in rows 24 units wide, numbering them."""

    def __init__(self) -> None:
        self.panels: list[Json] = []
        self.x = self.y = self.row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "id": len(self.panels) + 1, "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}})
        self.y += 1

    def add(self, panel: Json, w: int = 12, h: int = 8) -> None:
        if self.x + w > 24:
            self._newline()
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
        self.x = self.row_h = 0


def link(title: str, url: str) -> Json:
    return {"title": title, "url": url, "targetBlank": False}


def panel(kind: str, title: str, ds: Json, targets: list[Json], *, unit: str | None = None,
          links: list[Json] | None = None, description: str = "", **extra: Any) -> Json:
    defaults: Json = {}
    if unit:
        defaults["unit"] = unit
    if links:
        defaults["links"] = links
    out = {"type": kind, "title": title, "description": description, "datasource": ds,
           "targets": [{"datasource": ds, **t} for t in targets],
           "fieldConfig": {"defaults": defaults, "overrides": extra.pop("overrides", [])}}
    out.update(extra)
    return out


def prom(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> Json:
    return {"refId": ref, "expr": expr, "legendFormat": legend or "__auto", "range": not instant, "instant": instant}


def textbox(name: str, label: str) -> Json:
    return {"type": "textbox", "name": name, "label": label, "query": "", "current": {"text": "", "value": ""},
            "hide": 0, "options": []}


def datasource_var(name: str, label: str, plugin: str, uid: str, text: str) -> Json:
    return {"type": "datasource", "name": name, "label": label, "query": plugin, "regex": "", "hide": 0,
            "refresh": 1, "current": {"text": text, "value": uid}, "options": []}


def status_var() -> Json:
    # All = every status joined by ${status:csv}; the API reads that as no status filter
    return {"type": "custom", "name": "status", "label": "Status", "query": ",".join(STATUSES), "multi": True,
            "includeAll": True, "hide": 0, "current": {"text": ["All"], "value": ["$__all"]},
            "options": [{"text": "All", "value": "$__all", "selected": True}]
            + [{"text": s, "value": s, "selected": False} for s in STATUSES]}


def prom_var(name: str, label: str, query: str) -> Json:
    return {"type": "query", "name": name, "label": label, "datasource": PROM, "multi": True,
            "includeAll": True, "allValue": ".*", "refresh": 2, "sort": 1, "hide": 0, "regex": "",
            "current": {"text": ["All"], "value": ["$__all"]}, "options": [],
            "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "definition": query}


def dashboard(uid: str, title: str, description: str, grid: Grid, variables: list[Json], *,
              time_from: str = "now-6h", annotations: list[Json] | None = None) -> Json:
    others = [("postfix-overview", "Mail delivery overview", "mail-delivery-overview"),
              ("postfix-search", "Message search", "message-search"),
              ("postfix-trace", "Message trace", "message-trace"),
              ("postfix-health", "Delivery health", "delivery-health")]
    return {
        "uid": uid, "title": title, "description": description, "tags": ["postfix", "postfix-insights"],
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True, "graphTooltip": 1,
        "timezone": "browser", "refresh": "1m", "time": {"from": time_from, "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
            "type": "dashboard"}] + (annotations or [])},
        "links": [{"type": "link", "title": t, "url": f"/d/{u}/{s}", "keepTime": True, "includeVars": False,
                   "asDropdown": False, "icon": "dashboard", "tags": [], "targetBlank": False, "tooltip": ""}
                  for u, t, s in others if u != uid],
        "panels": grid.panels,
    }


# ---- Mail delivery overview (Prometheus) -------------------------------------------------

def overview() -> Json:
    sel = 'instance=~"$instance"'
    dsel = f'{sel},domain=~"$domain",domain!="other"'
    rate = "[$__rate_interval]"

    def domain_link(status: str) -> list[Json]:
        return [link(f"{status.capitalize()} messages to ${{__field.labels.domain}}",
                     f"{SEARCH}?var-domain=${{__field.labels.domain}}&var-status={status}&{TIME}")]

    g = Grid()
    g.row("Volume and outcomes")
    g.add(panel("stat", "Messages received", PROM, [prom(
        f"sum(increase(postfix_insights_messages_received_total{{{sel}}}[$__range]))", instant=True)],
        unit="short", description="Messages queued in the time range, each once."), w=6, h=6)
    g.add(panel("stat", "Bounce rate", PROM, [prom(
        f'sum(increase(postfix_insights_deliveries_total{{{sel},status="bounced"}}[$__range]))'
        f' / sum(increase(postfix_insights_deliveries_total{{{sel},status=~"sent|bounced"}}[$__range]))', instant=True)],
        unit="percentunit", description="Bounced share of final outcomes (sent + bounced).",
        links=[link("Bounced messages", f"{SEARCH}?var-status=bounced&{TIME}")]), w=6, h=6)
    g.add(panel("stat", "Deferral rate", PROM, [prom(
        f'sum(increase(postfix_insights_deliveries_total{{{sel},status="deferred"}}[$__range]))'
        f' / sum(increase(postfix_insights_deliveries_total{{{sel}}}[$__range]))', instant=True)],
        unit="percentunit", description="Deferred share of all delivery attempts (retries included).",
        links=[link("Deferred messages", f"{SEARCH}?var-status=deferred&{TIME}")]), w=6, h=6)
    g.add(panel("stat", "Outbound TLS", PROM, [prom(
        f'sum(increase(postfix_insights_outbound_deliveries_total{{{sel},tls="yes"}}[$__range]))'
        f' / sum(increase(postfix_insights_outbound_deliveries_total{{{sel}}}[$__range]))', instant=True)],
        unit="percentunit", description="Share of successful SMTP/LMTP deliveries that used TLS."), w=6, h=6)
    g.add(panel("timeseries", "Messages received by origin", PROM, [prom(
        f"sum by (origin) (rate(postfix_insights_messages_received_total{{{sel}}}{rate}))", "{{origin}}")],
        unit="reqps"))
    g.add(panel("timeseries", "Delivery attempts by status", PROM, [prom(
        f"sum by (status) (rate(postfix_insights_deliveries_total{{{sel}}}{rate}))", "{{status}}")],
        unit="reqps", links=[link("${__field.labels.status} messages",
                                  f"{SEARCH}?var-status=${{__field.labels.status}}&{TIME}")]))

    g.row("By recipient domain")
    g.add(panel("timeseries", "Bounce rate by domain", PROM, [prom(
        f'sum by (domain) (rate(postfix_insights_domain_deliveries_total{{{dsel},status="bounced"}}{rate}))'
        f' / sum by (domain) (rate(postfix_insights_domain_deliveries_total{{{dsel},status=~"sent|bounced"}}{rate}))',
        "{{domain}}")], unit="percentunit", links=domain_link("bounced"),
        description="Bounced share of final outcomes per recipient domain; click a series for its messages."))
    g.add(panel("timeseries", "Deferral rate by domain", PROM, [prom(
        f'sum by (domain) (rate(postfix_insights_domain_deliveries_total{{{dsel},status="deferred"}}{rate}))'
        f" / sum by (domain) (rate(postfix_insights_domain_deliveries_total{{{dsel}}}{rate}))",
        "{{domain}}")], unit="percentunit", links=domain_link("deferred"),
        description="Deferred share of attempts per recipient domain; click a series for its messages."))
    g.add(panel("bargauge", "Most bounces by domain", PROM, [prom(
        f'topk(10, sum by (domain) (increase(postfix_insights_domain_deliveries_total{{{dsel},status="bounced"}}[$__range])))',
        "{{domain}}", instant=True)], unit="short", links=domain_link("bounced"),
        options={"orientation": "horizontal", "displayMode": "basic", "showUnfilled": True,
                 "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}))
    g.add(panel("bargauge", "Most deferrals by domain", PROM, [prom(
        f'topk(10, sum by (domain) (increase(postfix_insights_domain_deliveries_total{{{dsel},status="deferred"}}[$__range])))',
        "{{domain}}", instant=True)], unit="short", links=domain_link("deferred"),
        options={"orientation": "horizontal", "displayMode": "basic", "showUnfilled": True,
                 "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}))

    g.row("Delays")
    bucket = f'postfix_insights_delivery_delay_seconds_bucket{{{sel},stage="total"}}'
    g.add(panel("timeseries", "Delivery delay percentiles", PROM, [
        prom(f"histogram_quantile({q}, sum by (le) (rate({bucket}{rate})))", f"p{int(q * 100)}", ref=r)
        for q, r in ((0.5, "A"), (0.9, "B"), (0.99, "C"))], unit="s",
        description="Per message, once, when it leaves the queue (Postfix delays= total)."))
    g.add(panel("timeseries", "p95 delay by stage", PROM, [prom(
        "histogram_quantile(0.95, sum by (le, stage) (rate("
        f'postfix_insights_delivery_delay_seconds_bucket{{{sel},stage!="total"}}{rate})))', "{{stage}}")],
        unit="s", description="before_queue, in_queue, connect, transmit: Postfix's delays=a/b/c/d.",
        links=[link("Slowest messages", f"{SEARCH}?var-status=sent&{TIME}")]))

    g.row("Queue")
    g.add(panel("timeseries", "Messages in queue", PROM, [prom(
        f"sum by (queue) (postfix_insights_queue_messages{{{sel}}})", "{{queue}}")], unit="short",
        links=[link("Deferred messages", f"{SEARCH}?var-status=deferred&{TIME}")]), w=8)
    g.add(panel("timeseries", "Oldest message age", PROM, [prom(
        f"max by (queue) (postfix_insights_queue_oldest_message_age_seconds{{{sel}}})", "{{queue}}")], unit="s",
        links=[link("Deferred messages", f"{SEARCH}?var-status=deferred&{TIME}")]), w=8)
    g.add(panel("stat", "postqueue readable", PROM, [prom(
        f"min by (reason) (postfix_insights_postqueue_up{{{sel}}})", "{{reason}}", instant=True)],
        description="0 means the queue panels are blind; the label says why (docs/deployment.md).",
        options={"colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        ), w=8)

    g.row("Rejects and abuse")
    g.add(panel("timeseries", "Rejects by reason", PROM, [prom(
        f"sum by (reason) (rate(postfix_insights_rejects_total{{{sel}}}{rate}))", "{{reason}}")], unit="reqps",
        links=[link("Rejected messages", f"{SEARCH}?var-status=rejected&{TIME}")]), w=8)
    g.add(panel("timeseries", "Rejects by SMTP code", PROM, [prom(
        f"sum by (code) (rate(postfix_insights_rejects_total{{{sel}}}{rate}))", "{{code}}")], unit="reqps"), w=8)
    g.add(panel("timeseries", "postscreen and SASL", PROM, [
        prom(f"sum by (verdict) (rate(postfix_insights_postscreen_verdicts_total{{{sel}}}{rate}))", "{{verdict}}"),
        prom(f"sum by (method) (rate(postfix_insights_sasl_auth_failures_total{{{sel}}}{rate}))",
             "SASL failure {{method}}", ref="B")], unit="reqps"), w=8)

    g.row("TLS and DKIM")
    g.add(panel("timeseries", "Outbound TLS coverage", PROM, [prom(
        f'sum(rate(postfix_insights_outbound_deliveries_total{{{sel},tls="yes"}}{rate}))'
        f" / sum(rate(postfix_insights_outbound_deliveries_total{{{sel}}}{rate}))", "TLS share")],
        unit="percentunit", links=[link("Sent messages", f"{SEARCH}?var-status=sent&{TIME}")]), w=8)
    g.add(panel("timeseries", "TLS handshakes", PROM, [prom(
        f"sum by (direction, protocol) (rate(postfix_insights_tls_connections_total{{{sel}}}{rate}))",
        "{{direction}} {{protocol}}")], unit="reqps"), w=8)
    g.add(panel("timeseries", "DKIM", PROM, [
        prom(f"sum by (domain) (rate(postfix_insights_dkim_signatures_total{{{sel}}}{rate}))", "signed {{domain}}"),
        prom(f"sum by (result) (rate(postfix_insights_dkim_verifications_total{{{sel}}}{rate}))",
             "verified {{result}}", ref="B")], unit="reqps"), w=8)

    g.row("Ingest")
    g.add(panel("timeseries", "Ingest lag", PROM, [prom(
        f"max by (source) (postfix_insights_ingest_lag_seconds{{{sel}}})", "{{source}}")], unit="s"), w=8)
    g.add(panel("timeseries", "Lines read", PROM, [
        prom(f"sum by (source) (rate(postfix_insights_lines_read_total{{{sel}}}{rate}))", "{{source}}"),
        prom(f"sum(rate(postfix_insights_unparsed_lines_total{{{sel}}}{rate}))", "unparsed", ref="B")],
        unit="reqps"), w=8)
    g.add(panel("timeseries", "Pushed lines waiting", PROM, [prom(
        f"sum(postfix_insights_intake_queued_lines{{{sel}}})", "queued")], unit="short"), w=8)

    return dashboard(
        "postfix-overview", "Mail delivery overview",
        "Postfix delivery metrics from postfix-insights (Prometheus). Per-domain series link to the message search.",
        g, [datasource_var("datasource", "Prometheus", "prometheus", PROM_UID, "Postfix Insights Prometheus"),
            prom_var("instance", "Service", "label_values(postfix_insights_lines_read_total, instance)"),
            prom_var("domain", "Recipient domain", "label_values(postfix_insights_domain_deliveries_total, domain)")])


# ---- Message search (Infinity, and the same on our plugin) --------------------------------

SEARCH_COLUMNS = [("time", "timestamp"), ("host", "string"), ("queue_id", "string"), ("sender", "string"),
                  ("recipient", "string"), ("subject", "string"), ("status", "string"), ("dsn", "string"),
                  ("relay", "string"), ("delay_seconds", "number"), ("attempts", "number"),
                  ("response", "string"), ("tls", "string"), ("client_ip", "string")]


def columns(spec: list[tuple[str, str]]) -> list[Json]:
    return [{"selector": s, "text": s, "type": t} for s, t in spec]


def infinity(url: str, cols: list[tuple[str, str]], ref: str = "A", root: str = "items",
             parser: str = "backend") -> Json:
    return {"refId": ref, "type": "json", "source": "url", "format": "table", "parser": parser, "url": url,
            "url_options": {"method": "GET", "data": ""}, "root_selector": root, "columns": columns(cols),
            "filters": []}


def status_override() -> Json:
    mappings = [{"type": "value", "options": {s: {"color": c, "index": i, "text": s}
                                              for i, (s, c) in enumerate(STATUS_COLOURS.items())}}]
    return {"matcher": {"id": "byName", "options": "status"},
            "properties": [{"id": "mappings", "value": mappings},
                           {"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}}]}


def trace_link_override(field: str = "queue_id", host: str = "${__data.fields.host}") -> Json:
    return {"matcher": {"id": "byName", "options": field},
            "properties": [{"id": "links", "value": [link(
                "Trace ${__value.raw}", f"{TRACE}?var-queue_id=${{__value.raw}}&var-host={host}&{TIME}")]}]}


def unit_override(field: str, unit: str) -> Json:
    return {"matcher": {"id": "byName", "options": field}, "properties": [{"id": "unit", "value": unit}]}


def search_link_override(field: str, var: str, extra: str = "") -> Json:
    return {"matcher": {"id": "byName", "options": field},
            "properties": [{"id": "links", "value": [link(
                f"Messages with {field} ${{__value.raw}}", f"{SEARCH}?var-{var}=${{__value.raw}}{extra}&{TIME}")]}]}


def table(title: str, ds: Json, targets: list[Json], overrides: list[Json], description: str = "",
          sort: str | None = None, transformations: list[Json] | None = None) -> Json:
    p = panel("table", title, ds, targets, description=description, overrides=overrides,
              options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False},
                       "sortBy": [{"displayName": sort, "desc": True}] if sort else []})
    p["fieldConfig"]["defaults"]["custom"] = {"align": "auto", "filterable": True,
                                              "cellOptions": {"type": "auto"}}
    if transformations:
        p["transformations"] = transformations
    return p


SEARCH_VARS = [("recipient", "Recipient"), ("sender", "Sender"), ("domain", "Recipient domain"),
               ("subject", "Subject contains"), ("queue_id", "Queue ID"), ("dsn", "DSN (5, 5.1, 5.1.1)"),
               ("host", "Mail host")]
SEARCH_URL = ("/api/v1/messages?recipient=${recipient}&sender=${sender}&domain=${domain}&subject=${subject}"
              "&queue_id=${queue_id}&status=${status:csv}&dsn=${dsn}&host=${host}"
              "&from=${__timeFrom}&to=${__timeTo}&limit=1000")


def search_overrides() -> list[Json]:
    return [status_override(), trace_link_override(), unit_override("delay_seconds", "s"),
            unit_override("time", "dateTimeAsIso")]


def search() -> Json:
    g = Grid()
    g.add(table("Messages", INFINITY, [infinity(SEARCH_URL, SEARCH_COLUMNS)], search_overrides(),
                description="One row per recipient delivery (GET /api/v1/messages). Queue IDs open the trace."),
          w=24, h=16)
    g.add(table("DSN codes", INFINITY, [infinity(
        "/api/v1/stats/dsn?domain=${domain}&host=${host}&from=${__timeFrom}&to=${__timeTo}&limit=50",
        [("domain", "string"), ("dsn", "string"), ("status", "string"), ("records", "number")])],
        [status_override(), search_link_override("dsn", "dsn", "&var-domain=${__data.fields.domain}")],
        description="DSN codes of the recipient domain in the time range (GET /api/v1/stats/dsn).",
        sort="records"), w=12, h=8)
    g.add(table("Busiest recipient domains", INFINITY, [infinity(
        "/api/v1/stats/domains?host=${host}&from=${__timeFrom}&to=${__timeTo}&limit=20",
        [("domain", "string"), ("records", "number"), ("sent", "number"), ("deferred", "number"),
         ("bounced", "number"), ("rejected", "number"), ("bounce_rate", "number"), ("defer_rate", "number")])],
        [search_link_override("domain", "domain"), unit_override("bounce_rate", "percentunit"),
         unit_override("defer_rate", "percentunit")],
        description="GET /api/v1/stats/domains; click a domain to filter the search.", sort="records"), w=12, h=8)
    variables = [datasource_var("infinity", "API", "yesoreyeram-infinity-datasource", INFINITY_UID,
                                "Postfix Insights API"), status_var()]
    variables += [textbox(n, label) for n, label in SEARCH_VARS]
    return dashboard("postfix-search", "Message search",
                     "Per-recipient delivery records from the postfix-insights API through the Infinity data source.",
                     g, variables, time_from="now-24h")


def plugin_query(ref: str, query_type: str, **fields: Any) -> Json:
    return {"refId": ref, "queryType": query_type, **fields}


def search_plugin() -> Json:
    g = Grid()
    g.add(table("Messages", PLUGIN, [plugin_query(
        "A", "search", recipient="${recipient}", sender="${sender}", domain="${domain}", subject="${subject}",
        queueId="${queue_id}", status=["${status}"], dsn="${dsn}", host="${host}", limit=1000)],
        search_overrides(), description="The same search through the postfixinsights-messages-datasource plugin."),
        w=24, h=16)
    g.add(table("DSN codes", PLUGIN, [plugin_query("A", "stats", stat="dsn", domain="${domain}", host="${host}",
                                                   limit=50)],
                [status_override(), search_link_override("dsn", "dsn", "&var-domain=${__data.fields.domain}")],
                sort="records"), w=12, h=8)
    g.add(panel("timeseries", "Outcomes", PLUGIN, [plugin_query(
        "A", "stats", stat="volume", domain="${domain}", host="${host}", interval="$__interval")],
        unit="short"), w=12, h=8)
    variables = [datasource_var("pidatasource", "Postfix Insights", "postfixinsights-messages-datasource",
                                PLUGIN_UID, "Postfix Insights"), status_var()]
    variables += [textbox(n, label) for n, label in SEARCH_VARS]
    incidents = {"datasource": PLUGIN, "enable": True, "hide": False, "iconColor": "red",
                 "name": "Bounce and deferral incidents",
                 "target": plugin_query("Anno", "annotations", domain="${domain}", host="${host}")}
    return dashboard("postfix-search-plugin", "Message search (plugin)",
                     "Per-recipient delivery records through the Postfix Insights Grafana plugin.",
                     g, variables, time_from="now-24h", annotations=[incidents])


# ---- Message trace (Infinity) ------------------------------------------------------------

def trace() -> Json:
    url = "/api/v1/messages/${queue_id}?host=${host}"
    g = Grid()
    g.add(table("Message", INFINITY, [infinity(
        url, [("host", "string"), ("queue_id", "string"), ("time", "timestamp"), ("sender", "string"),
              ("message_id", "string"), ("subject", "string"), ("client_host", "string"), ("client_ip", "string"),
              ("sasl_user", "string"), ("size", "number"), ("nrcpt", "number"), ("origin", "string"),
              ("dkim_domain", "string"), ("dkim_result", "string"), ("status", "string")],
        root=".items[] | {host, queue_id} + .message", parser="jq-backend")],
        [unit_override("size", "decbytes")],
        description="One row per instance of the queue ID (Postfix reuses IDs; newest first)."), w=24, h=6)
    # a bounce notice's trace also lists its parent's recipients: keep which queue ID each is of
    g.add(table("Recipients", INFINITY, [infinity(
        url, [("queue_id", "string"), ("recipient", "string"), ("orig_recipient", "string"), ("status", "string"),
              ("dsn", "string"), ("relay", "string"), ("delay_seconds", "number"), ("tls", "string"),
              ("response", "string")],
        root=".items[] | .queue_id as $q | .recipients[] | {queue_id: (.queue_id // $q)} + del(.attempts)",
        parser="jq-backend")],
        [status_override(), unit_override("delay_seconds", "s")]), w=24, h=7)
    g.add(table("Delivery attempts", INFINITY, [infinity(
        url, [("queue_id", "string"), ("recipient", "string"), ("time", "timestamp"), ("status", "string"),
              ("dsn", "string"), ("relay", "string"), ("delay_seconds", "number"), ("tls", "string"),
              ("response", "string")],
        root=".items[] | .queue_id as $q | .recipients[] | (.queue_id // $q) as $rq | .recipient as $r"
             " | .attempts[] | {queue_id: $rq, recipient: $r} + .",
        parser="jq-backend")],
        [status_override(), unit_override("delay_seconds", "s")],
        description="Every to= line of every recipient, retries included."), w=24, h=8)
    g.add(table("Linked queue IDs", INFINITY, [infinity(
        url, [("kind", "string"), ("parent_queue_id", "string"), ("child_queue_id", "string"),
              ("time", "timestamp")], root="items.links")],
        [trace_link_override("parent_queue_id", "${host}"), trace_link_override("child_queue_id", "${host}")],
        description="Bounce notices, delay warnings and re-queued copies (queued as) of this message."), w=12, h=6)
    g.add(table("Instances", INFINITY, [infinity(
        url, [("queue_id", "string"), ("host", "string"), ("role", "string")], root="items.instances")],
        [trace_link_override()]), w=12, h=6)
    g.add(table("Log lines", INFINITY, [infinity(
        url, [("time", "timestamp"), ("queue_id", "string"), ("line", "string")], root="items.lines")],
        [unit_override("time", "dateTimeAsIso")]), w=24, h=10)
    return dashboard("postfix-trace", "Message trace",
                     "Everything known about one queue ID: header, recipients, attempts, linked messages, raw lines.",
                     g, [datasource_var("infinity", "API", "yesoreyeram-infinity-datasource", INFINITY_UID,
                                        "Postfix Insights API"),
                         textbox("queue_id", "Queue ID"), textbox("host", "Mail host")], time_from="now-7d")


# ---- Delivery health (Infinity stats) ----------------------------------------------------

def health() -> Json:
    common = "domain=${domain}&host=${host}&from=${__timeFrom}&to=${__timeTo}"
    series = f"{common}&interval=$__interval"

    def stat(name: str, query: str, cols: list[tuple[str, str]]) -> Json:
        return infinity(f"/api/v1/stats/{name}?{query}", cols)

    g = Grid()
    g.add(panel("timeseries", "Delivered within SLA", INFINITY, [stat(
        "sla", series, [("time", "timestamp"), ("share", "number")])], unit="percentunit",
        description="Share of delivered messages within the threshold (300 s) per interval."), w=12)
    g.add(panel("timeseries", "Bounce and deferral rates", INFINITY, [stat(
        "rates", series, [("time", "timestamp"), ("bounce_rate", "number"), ("defer_rate", "number")])],
        unit="percentunit", links=[link("Bounced messages", f"{SEARCH}?var-domain=${{domain}}&var-status=bounced&{TIME}")]),
        w=12)
    g.add(table("Slowest domains", INFINITY, [stat(
        "slow-domains", f"{common}&limit=15",
        [("domain", "string"), ("deliveries", "number"), ("p50_delay_seconds", "number"),
         ("p95_delay_seconds", "number"), ("max_delay_seconds", "number")])],
        [search_link_override("domain", "domain", "&var-status=sent")]
        + [unit_override(f, "s") for f in ("p50_delay_seconds", "p95_delay_seconds", "max_delay_seconds")],
        sort="p95_delay_seconds"), w=12, h=9)
    g.add(table("DSN breakdown", INFINITY, [stat(
        "dsn", f"{common}&limit=30", [("domain", "string"), ("dsn", "string"), ("status", "string"),
                                      ("records", "number")])],
        [status_override(), search_link_override(
            "dsn", "dsn", "&var-domain=${__data.fields.domain}&var-status=${__data.fields.status}")],
        sort="records"), w=12, h=9)
    g.add(table("Messages by weekday and hour (UTC)", INFINITY, [stat(
        "heatmap", common, [("weekday", "number"), ("hour", "number"), ("messages", "number")])],
        [], description="Rows: weekday (0 = Monday); columns: hour of day.",
        transformations=[{"id": "groupingToMatrix", "options": {
            "columnField": "hour", "rowField": "weekday", "valueField": "messages", "emptyValue": "zero"}}]),
        w=24, h=9)
    g.panels[-1]["fieldConfig"]["defaults"]["custom"]["cellOptions"] = {"type": "color-background",
                                                                        "mode": "gradient"}
    g.panels[-1]["fieldConfig"]["defaults"]["color"] = {"mode": "continuous-GrYlRd"}
    g.add(table("TLS coverage by domain", INFINITY, [stat(
        "tls-coverage", f"{common}&limit=20",
        [("domain", "string"), ("deliveries", "number"), ("tls", "number"), ("share", "number")])],
        [unit_override("share", "percentunit"), search_link_override("domain", "domain", "&var-status=sent")],
        sort="deliveries"), w=12, h=9)
    g.add(panel("timeseries", "DKIM signing rate", INFINITY, [stat(
        "dkim", "host=${host}&from=${__timeFrom}&to=${__timeTo}&interval=$__interval",
        [("time", "timestamp"), ("rate", "number")])], unit="percentunit",
        description="Signed share of received messages per interval."), w=12, h=9)
    g.add(table("Top senders", INFINITY, [stat(
        "top-senders", f"{common}&limit=15",
        [("sender", "string"), ("messages", "number"), ("recipients", "number"), ("bounced", "number"),
         ("deferred", "number")])],
        [search_link_override("sender", "sender")], sort="messages"), w=12, h=9)
    g.add(table("Top recipients", INFINITY, [stat(
        "top-recipients", f"{common}&limit=15",
        [("recipient", "string"), ("records", "number"), ("bounced", "number"), ("deferred", "number")])],
        [search_link_override("recipient", "recipient")], sort="records"), w=12, h=9)
    g.add(table("Rejects", INFINITY, [stat(
        "rejects", "host=${host}&from=${__timeFrom}&to=${__timeTo}&limit=20",
        [("reason", "string"), ("code", "string"), ("records", "number")])], [], sort="records"), w=24, h=7)
    return dashboard("postfix-health", "Delivery health",
                     "SLA, slow domains, DSN codes, traffic pattern, TLS and DKIM from the postfix-insights API.",
                     g, [datasource_var("infinity", "API", "yesoreyeram-infinity-datasource", INFINITY_UID,
                                        "Postfix Insights API"),
                         textbox("domain", "Recipient domain"), textbox("host", "Mail host")], time_from="now-7d")


DASHBOARDS = {"postfix-overview.json": overview, "postfix-search.json": search,
              "postfix-search-plugin.json": search_plugin, "postfix-trace.json": trace,
              "postfix-health.json": health}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()}


if __name__ == "__main__":
    for name, text in render().items():
        (HERE / name).write_text(text)
        print("wrote", HERE / name)
