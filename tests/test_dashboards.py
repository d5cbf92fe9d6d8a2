"""The Grafana dashboards in dashboards/: structure, data sources, links between them, the
metric names in their PromQL, and the API paths and parameters behind their Infinity queries,
checked against the live registry, the service's router and docs/api.md; then every Infinity
URL is asked of a running service over the golden logs."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from conftest import DATA, ROOT
from service import free_port

DASH = ROOT / "dashboards"
API_DOC = ROOT / "docs" / "api.md"
PROVISIONING = DASH / "provisioning" / "datasources" / "postfix-insights.yaml"
EXPECTED = {"postfix-overview", "postfix-search", "postfix-search-plugin", "postfix-trace", "postfix-health"}
INFINITY_TYPE = "yesoreyeram-infinity-datasource"
PLUGIN_TYPE = "postfixinsights-messages-datasource"
# Grafana's own variables, never defined by a dashboard
BUILTIN = {"__url_time_range", "__from", "__to", "__timeFrom", "__timeTo", "__interval", "__interval_ms",
           "__rate_interval", "__range", "__range_s", "__range_ms", "__all", "__value", "__field", "__data",
           "__series", "__dashboard", "__org", "__user", "__name"}
VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)")


Json = dict[str, Any]


def load_dashboards() -> dict[str, Json]:
    out = {}
    for path in sorted(DASH.glob("*.json")):
        d = json.loads(path.read_text())
        out[d["uid"]] = d
    return out


DASHBOARDS = load_dashboards()


def panels(d: Json) -> Iterator[Json]:
    for p in d["panels"]:
        yield p
        yield from p.get("panels", [])


def variables(d: Json) -> dict[str, Json]:
    return {v["name"]: v for v in d["templating"]["list"]}


def refs(text: str) -> set[str]:
    """Root names of the template variables a string uses (`${__field.labels.domain}` -> `__field`)."""
    return {a or b for a, b in VAR_REF.findall(text)}


def grafana_slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def targets(d: Json) -> Iterator[tuple[Json, Json]]:
    for p in panels(d):
        for t in p.get("targets", []):
            yield p, t


def links(d: Json) -> Iterator[tuple[str, str]]:
    """(where, url) of every dashboard link, panel link and data link."""
    for link in d.get("links", []):
        if link.get("type") == "link":
            yield "dashboard link", link["url"]
    for p in panels(d):
        where = f"panel {p['id']} {p['title']!r}"
        for link in p.get("links", []):
            yield where, link["url"]
        fc = p.get("fieldConfig", {})
        for link in fc.get("defaults", {}).get("links", []):
            yield where, link["url"]
        for o in fc.get("overrides", []):
            for prop in o["properties"]:
                if prop["id"] == "links":
                    for link in prop["value"]:
                        yield f"{where} field {o['matcher']['options']}", link["url"]


def provisioned(path: Path = PROVISIONING) -> dict[str, str]:
    """uid -> type of the data sources in a provisioning YAML (no YAML library in the venv;
    the file keeps one `- name:` item per data source)."""
    out = {}
    for block in re.split(r"\n  - name:", path.read_text())[1:]:
        uid = re.search(r"^    uid: (\S+)$", block, re.MULTILINE)
        kind = re.search(r"^    type: (\S+)$", block, re.MULTILINE)
        assert uid and kind, block
        out[uid[1]] = kind[1]
    return out


# ---- the registry and the API contract ---------------------------------------------------

def registry_names(tmp_path: Path) -> set[str]:
    """Sample names the live registry serves: counters with _total, histograms with
    _bucket/_count/_sum (families from the same replay tests/test_metrics_reference.py uses)."""
    from test_metrics_reference import live_families

    names = set()
    for name, (kind, _labels) in live_families(tmp_path).items():
        if kind == "histogram":
            names |= {name + s for s in ("_bucket", "_count", "_sum")}
        else:
            names.add(name)
    return names


PROM_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
              "unless", "inf", "nan", "atan2"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: what is left after strings, label matchers, ranges,
    grouping clauses, template variables, numbers, functions and keywords are taken out."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\$\{[^}]*\}|\$\w+", "", s)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+\w+", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word in PROM_WORDS or re.fullmatch(r"\d.*", word):
            continue
        names.add(word)
    return names


def test_promql_parser_finds_names() -> None:
    assert promql_metric_names(
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="y{z}"}[$__rate_interval])))'
        ' / on (i) group_left(j) b_total offset 1h > 0.5 and c') == {"a_bucket", "b_total", "c"}


def api_sections() -> dict[str, str]:
    """'/api/v1/messages/{queue_id}' -> the text of its section in docs/api.md."""
    text = API_DOC.read_text()
    out = {}
    for m in re.finditer(r"^### `GET (/api/v1/[^`]+)`[^\n]*\n(.*?)(?=^##)", text + "\n##", re.MULTILINE | re.DOTALL):
        out[m[1]] = m[2]
    return out


def documented_stats() -> dict[str, set[str]]:
    """Stat name -> item keys, from the table in docs/api.md."""
    out = {}
    for m in re.finditer(r"^\| `([a-z-]+)` \| \w+ \| (.+) \|$", api_sections()["/api/v1/stats/{name}"], re.MULTILINE):
        out[m[1]] = {k.strip() for group in re.findall(r"`([^`]+)`", m[2]) for k in group.split(",")}
    return out


def route_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(pattern)) + "$")


def router_paths() -> set[str]:
    """GET routes of the service as exporter.app.build_app registers them (over an empty store)."""
    import tempfile

    from exporter import app as service
    from exporter import settings

    with tempfile.TemporaryDirectory() as tmp:
        config = settings.load(flags={"store.path": str(Path(tmp) / "s.duckdb")}, environ={})
        application = service.build_app(config)
        try:
            return {r.resource.canonical for r in application.router.routes() if r.resource is not None}
        finally:
            application[service.WORKER].store.close()


def known_path(path: str, routes: set[str]) -> str | None:
    """The route or documented endpoint pattern a concrete path belongs to."""
    for pattern in sorted(routes | set(api_sections()), key=lambda p: ("{" in p, p)):
        if route_regex(pattern).match(path):
            return pattern
    return None


@pytest.fixture(scope="module")
def routes() -> set[str]:
    return router_paths()


# ---- structure -----------------------------------------------------------------------------

def test_every_dashboard_is_there_and_generated(tmp_path: Path) -> None:
    assert set(DASHBOARDS) == EXPECTED
    spec = importlib.util.spec_from_file_location("dashboards_build", DASH / "build.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for name, text in build.render().items():
        assert (DASH / name).read_text() == text, f"{name} is stale: run python dashboards/build.py"


@pytest.mark.parametrize("uid", sorted(EXPECTED))
def test_dashboard_structure(uid: str) -> None:
    d = DASHBOARDS[uid]
    assert d["title"] and isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    assert isinstance(d["templating"]["list"], list)
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {uid}"
    names = [v["name"] for v in d["templating"]["list"]]
    assert len(names) == len(set(names))
    for p in panels(d):
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, (uid, p["title"])
        if p["type"] != "row":
            assert p["targets"], (uid, p["title"])


def test_trace_dashboard_address() -> None:
    d = DASHBOARDS["postfix-trace"]
    assert grafana_slug(d["title"]) == "message-trace"
    assert {"queue_id", "host"} <= set(variables(d))
    assert grafana_slug(DASHBOARDS["postfix-search"]["title"]) == "message-search"


def check_data_source(ds: Json, ds_vars: dict[str, Json], prov: dict[str, str], where: str) -> None:
    """A data-source reference is `${var}` of a data-source variable of that type, or a provisioned uid."""
    m = re.fullmatch(r"\$\{(\w+)\}|\$(\w+)", ds["uid"])
    if m:
        var = ds_vars.get(m[1] or m[2])
        assert var is not None, f"{where}: {ds['uid']} is not a data-source variable"
        assert var["query"] == ds["type"], where
    else:
        assert prov.get(ds["uid"]) == ds["type"], f"{where}: {ds} is not provisioned"


def test_data_sources_are_variables_or_provisioned() -> None:
    prov = provisioned()
    assert set(prov.values()) == {"prometheus", INFINITY_TYPE, PLUGIN_TYPE}
    for uid, d in DASHBOARDS.items():
        ds_vars = {n: v for n, v in variables(d).items() if v["type"] == "datasource"}
        for v in ds_vars.values():
            # the default is a provisioned data source of the variable's type
            assert prov.get(v["current"]["value"]) == v["query"], (uid, v["name"])
        refs_: list[tuple[Json, str]] = [(v["datasource"], f"variable {v['name']}")
                                        for v in variables(d).values() if "datasource" in v]
        for p in panels(d):
            if p["type"] != "row":
                refs_.append((p["datasource"], f"panel {p['title']!r}"))
                refs_ += [(t.get("datasource", p["datasource"]), f"target {t['refId']} of {p['title']!r}")
                          for t in p["targets"]]
        refs_ += [(a["datasource"], f"annotation {a['name']!r}") for a in d["annotations"]["list"]
                  if not a.get("builtIn")]
        for ds, where in refs_:
            check_data_source(ds, ds_vars, prov, f"{uid} {where}")


def test_plugin_data_source_matches_the_plugins_own_provisioning() -> None:
    """grafana-plugin/ ships the same data source; an operator copies either file."""
    theirs = ROOT / "grafana-plugin" / "provisioning" / "datasources" / "postfix-insights.yaml"
    if not theirs.exists():
        pytest.skip("grafana-plugin/provisioning not there yet")
    ours = {uid for uid, kind in provisioned().items() if kind == PLUGIN_TYPE}
    assert ours == {uid for uid, kind in provisioned(theirs).items() if kind == PLUGIN_TYPE}


# ---- links ---------------------------------------------------------------------------------

def test_links_point_to_dashboards_and_their_variables() -> None:
    count = 0
    for uid, d in DASHBOARDS.items():
        own = set(variables(d)) | BUILTIN
        for where, url in links(d):
            count += 1
            used = refs(url)
            assert used <= own, f"{uid} {where}: {url} uses undefined {used - own}"
            parts = urlsplit(re.sub(r"\$\{[^}]*\}", "X", url))
            m = re.fullmatch(r"/d/([^/]+)/([^/]+)", parts.path)
            assert m, f"{uid} {where}: {url} is not a dashboard link"
            target = DASHBOARDS.get(m[1])
            assert target is not None, f"{uid} {where}: no dashboard {m[1]}"
            assert m[2] == grafana_slug(target["title"]), f"{uid} {where}: slug {m[2]}"
            target_vars = set(variables(target))
            for key, _ in parse_qsl(url.split("?", 1)[1] if "?" in url else "", keep_blank_values=True):
                if key.startswith("var-"):
                    assert key[4:] in target_vars, f"{uid} {where}: {m[1]} has no variable {key[4:]}"
                else:
                    assert key in ("from", "to", "orgId", "${__url_time_range}"), f"{uid} {where}: {key}"
    assert count >= 20


def test_per_domain_series_open_the_search_for_that_domain() -> None:
    d = DASHBOARDS["postfix-overview"]
    checked = 0
    for p in panels(d):
        exprs = [t["expr"] for t in p.get("targets", [])]
        # recipient-domain series (the DKIM panel's domain is the signing domain: no such link)
        if any("by (domain)" in e and "domain_deliveries_total" in e for e in exprs):
            urls = [link["url"] for link in p["fieldConfig"]["defaults"].get("links", [])]
            status = "bounced" if "bounce" in p["title"].lower() else "deferred"
            assert (f"/d/postfix-search/message-search?var-domain=${{__field.labels.domain}}"
                    f"&var-status={status}&${{__url_time_range}}") in urls, p["title"]
            checked += 1
    assert checked >= 4


def test_queue_ids_open_the_trace() -> None:
    for uid in ("postfix-search", "postfix-search-plugin"):
        table = next(p for p in panels(DASHBOARDS[uid]) if p["title"] == "Messages")
        urls = [url for where, url in links({"panels": [table]}) if where.endswith("field queue_id")]
        assert urls == [("/d/postfix-trace/message-trace?var-queue_id=${__value.raw}"
                         "&var-host=${__data.fields.host}&${__url_time_range}")], uid


def test_search_table_colours_every_status_and_shows_delays_in_seconds() -> None:
    statuses = set(re.findall(r"`(\w+)`", re.search(r"`status` \(repeatable.*?\)", API_DOC.read_text(), re.DOTALL)[0]))
    statuses.discard("status")
    assert statuses >= {"sent", "deferred", "bounced"}
    for uid in ("postfix-search", "postfix-search-plugin"):
        table = next(p for p in panels(DASHBOARDS[uid]) if p["title"] == "Messages")
        props = {o["matcher"]["options"]: {x["id"]: x["value"] for x in o["properties"]}
                 for o in table["fieldConfig"]["overrides"]}
        mapped = props["status"]["mappings"][0]["options"]
        assert set(mapped) == statuses, uid
        assert all(m["color"] for m in mapped.values())
        assert props["delay_seconds"]["unit"] == "s"
        status_var = variables(DASHBOARDS[uid])["status"]
        assert set(status_var["query"].split(",")) == statuses


# ---- PromQL --------------------------------------------------------------------------------

def dashboard_promql() -> Iterator[tuple[str, str]]:
    for uid, d in DASHBOARDS.items():
        for p, t in targets(d):
            if t["datasource"]["type"] == "prometheus":
                yield f"{uid} {p['title']!r}", t["expr"]
        for v in variables(d).values():
            if v["type"] == "query" and v["datasource"]["type"] == "prometheus":
                m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", v["query"]["query"])
                assert m, v["query"]
                yield f"{uid} variable {v['name']}", m[1]


def test_every_promql_metric_is_exported(tmp_path: Path) -> None:
    exported = registry_names(tmp_path)
    used: set[str] = set()
    for where, expr in dashboard_promql():
        names = promql_metric_names(expr)
        assert names, f"{where}: no metric in {expr}"
        assert names <= exported, f"{where}: {names - exported} not exported"
        used |= names
    assert len(used) >= 15


def test_promql_uses_defined_variables() -> None:
    for uid, d in DASHBOARDS.items():
        own = set(variables(d)) | BUILTIN
        for p, t in targets(d):
            for value in (t.get("expr"), t.get("url")):
                if value:
                    assert refs(value) <= own, (uid, p["title"], refs(value) - own)


# ---- Infinity ------------------------------------------------------------------------------

def infinity_targets() -> Iterator[tuple[str, Json, Json]]:
    for uid, d in DASHBOARDS.items():
        for p, t in targets(d):
            if t["datasource"]["type"] == INFINITY_TYPE:
                yield uid, p, t


def test_infinity_queries_ask_documented_or_routed_paths(routes: set[str]) -> None:
    sections = api_sections()
    stats = documented_stats()
    seen = set()
    for uid, p, t in infinity_targets():
        assert t["source"] == "url" and t["type"] == "json" and t["parser"] in ("backend", "jq-backend"), p["title"]
        url = t["url"]
        path, _, query = url.partition("?")
        path = re.sub(r"\$\{[^}]*\}", "QUEUEID", path)
        pattern = known_path(path, routes)
        assert pattern, f"{uid} {p['title']!r}: {path} is neither routed nor in docs/api.md"
        seen.add(pattern)
        doc = sections.get(pattern) or next(text for pat, text in sections.items() if route_regex(pat).match(path))
        params = set(re.findall(r"`(\w+)`", doc))
        if path.startswith("/api/v1/stats/"):
            name = path.rsplit("/", 1)[1]
            assert name in stats, f"{uid}: unknown stat {name}"
            keys = stats[name] | {"time"}
            assert {c["selector"] for c in t["columns"]} <= keys, (uid, p["title"])
            params = set(re.findall(r"`(\w+)`", doc.split("|", 1)[0]))
        for key, _ in parse_qsl(query, keep_blank_values=True):
            assert key in params, f"{uid} {p['title']!r}: parameter {key} is not documented for {pattern}"
        if pattern == "/api/v1/messages":
            assert t["root_selector"] == "items"
            assert {c["selector"] for c in t["columns"]} <= params, p["title"]
    assert {"/api/v1/messages", "/api/v1/messages/{queue_id}", "/api/v1/stats/{name}"} <= seen


def test_trace_columns_are_documented_item_keys() -> None:
    doc = api_sections()["/api/v1/messages/{queue_id}"]
    keys = set(re.findall(r"\b([a-z_]+)\b", doc))
    for p, t in targets(DASHBOARDS["postfix-trace"]):
        assert t["url"] == "/api/v1/messages/${queue_id}?host=${host}"
        for c in t["columns"]:
            assert c["selector"] in keys, (p["title"], c["selector"])


def test_time_range_and_variables_reach_the_api() -> None:
    for uid, p, t in infinity_targets():
        if "/stats/" in t["url"] or t["url"].startswith("/api/v1/messages?"):
            assert "from=${__timeFrom}" in t["url"] and "to=${__timeTo}" in t["url"], (uid, p["title"])
    search = next(t for _, p, t in infinity_targets() if p["title"] == "Messages")
    for var in ("recipient", "sender", "domain", "subject", "queue_id", "dsn", "host"):
        assert f"{var}=${{{var}}}" in search["url"]
    assert "status=${status:csv}" in search["url"]


# ---- the plugin ----------------------------------------------------------------------------

PLUGIN_KEYS = {"refId", "datasource", "queryType", "recipient", "sender", "domain", "subject", "queueId", "status",
               "dsn", "host", "limit", "stat", "interval"}


def test_plugin_queries_use_its_query_model() -> None:
    d = DASHBOARDS["postfix-search-plugin"]
    stats = documented_stats()
    queries = [t for _, t in targets(d)] + [a["target"] for a in d["annotations"]["list"] if "target" in a]
    assert queries
    for q in queries:
        assert set(q) <= PLUGIN_KEYS, set(q) - PLUGIN_KEYS
        assert q["queryType"] in ("search", "trace", "stats", "annotations")
        if q["queryType"] == "stats":
            assert q["stat"] in stats
        if "status" in q:
            assert isinstance(q["status"], list)
    search = next(q for q in queries if q["queryType"] == "search")
    assert search["queueId"] == "${queue_id}" and search["status"] == ["${status}"]


# ---- the queries against a running service --------------------------------------------------

class LiveService:
    """build_app over a store of the golden logs, on a loopback port in a thread of its own."""

    def __init__(self, tmp: Path) -> None:
        from exporter import app as service
        from exporter import metrics, settings
        from exporter.config import (
            CorrelatorConfig,
            ParserConfig,
            ReaderConfig,
            StoreConfig,
        )
        from exporter.ingest import Pipeline
        from exporter.store.db import Store

        db = tmp / "golden.duckdb"
        store = Store(StoreConfig(path=db))
        metrics.install(store.con)
        Pipeline(store, ReaderConfig(), ParserConfig(year=2026, timezone="UTC"), CorrelatorConfig()).ingest_files(
            [str(p) for p in sorted((DATA / "golden").glob("*.log"))])
        store.close()
        config = settings.load(flags={"store.path": str(db), "metrics.postqueue_command": ["false"]}, environ={})
        self.app = service.build_app(config)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(30), "service did not start"

    def _run(self) -> None:
        from aiohttp import web

        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self.app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    svc = LiveService(tmp_path_factory.mktemp("live"))
    try:
        yield svc
    finally:
        svc.close()


GOLDEN_FROM_MS = 1764547200000  # 2025-12-01T00:00:00Z
GOLDEN_TO_MS = 1801440000000    # 2027-02-01T00:00:00Z (one golden file crosses into 2027)


def fill(url: str, values: dict[str, str]) -> str:
    """Interpolate as Grafana would, with every textbox at `values` (empty when not given)."""
    statuses = ",".join(variables(DASHBOARDS["postfix-search"])["status"]["query"].split(","))
    # the golden logs' span (December 2025 to January 2027), a day a bucket, as Grafana would pick
    fixed = {"__timeFrom": str(GOLDEN_FROM_MS), "__timeTo": str(GOLDEN_TO_MS), "__interval": "1d", "status": statuses}

    def sub(m: re.Match[str]) -> str:
        name = m[1] or m[2]
        return urllib.request.quote({**fixed, **values}.get(name, ""), safe=",")
    return VAR_REF.sub(sub, url)


def test_every_routed_infinity_url_answers(live: LiveService, routes: set[str]) -> None:
    status, body = live.get("/api/v1/messages?limit=1000")
    assert status == 200 and body["items"], body
    queue_id = next(i["queue_id"] for i in body["items"] if i.get("queue_id"))
    asked = 0
    for uid, p, t in infinity_targets():
        for values in ({}, {"queue_id": queue_id}):
            url = fill(t["url"], values)
            path = url.split("?")[0]
            if not any(route_regex(r).match(path) for r in routes) or path.endswith("/messages/"):
                continue  # documented, not served yet (or the trace without a queue ID)
            status, answer = live.get(url)
            assert status == 200, f"{uid} {p['title']!r}: GET {url} -> {status} {answer}"
            assert isinstance(answer["items"], list)
            asked += 1
    assert asked >= 3


def test_empty_textboxes_do_not_filter(live: LiveService) -> None:
    """Infinity sends `sender=` for an empty textbox: every search parameter the dashboard fills
    from a textbox must read an empty value as no filter (not 400, not `sender = ''`)."""
    base = fill("/api/v1/messages?from=${__timeFrom}&to=${__timeTo}&limit=1000", {})
    status, unfiltered = live.get(base)
    assert status == 200 and unfiltered["items"], unfiltered
    search = next(t for _, p, t in infinity_targets() if p["title"] == "Messages")
    textboxes = [k for k, v in parse_qsl(search["url"].split("?", 1)[1]) if re.fullmatch(r"\$\{\w+\}", v)]
    wrong = {}
    for key in textboxes:
        status, answer = live.get(f"{base}&{key}=")
        if status != 200:
            wrong[key] = f"{status} {answer['error']['message']}"
        elif len(answer["items"]) != len(unfiltered["items"]):
            wrong[key] = f"{len(answer['items'])} of {len(unfiltered['items'])} rows"
    assert not wrong, f"empty parameters that filter or fail: {wrong}"
    filled = live.get(fill(search["url"], {}))[1]["items"]
    assert len(filled) == len(unfiltered["items"])
    domain = filled[0]["recipient"].rsplit("@", 1)[1]
    narrowed = live.get(fill(search["url"], {"domain": domain}))[1]["items"]
    assert narrowed and all(i["recipient"].endswith("@" + domain) for i in narrowed)
    assert len(narrowed) < len(filled)

def jsonata_path(data: Any, path: str) -> list[Any]:
    """The dotted paths the backend (JSONata) parser is given here: map over arrays, flatten."""
    values = [data]
    for step in path.split("."):
        nxt: list[Any] = []
        for v in values:
            for item in v if isinstance(v, list) else [v]:
                if isinstance(item, dict) and step in item:
                    got = item[step]
                    nxt.extend(got if isinstance(got, list) else [got])
        values = nxt
    return values


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq not installed (Debian: apt install jq)")
def test_trace_selectors_extract_every_column(live: LiveService) -> None:
    """Each trace panel's root selector, run on a real trace (a bounce notice: it has a parent,
    links and lines), yields rows carrying every column the panel shows."""
    bounces = live.get(fill("/api/v1/messages?status=bounced&from=${__timeFrom}&to=${__timeTo}", {}))[1]["items"]
    notice = next(i for i in bounces if i["sender"] == "" and i["queue_id"])
    status, trace = live.get(f"/api/v1/messages/{notice['queue_id']}?host={notice['host']}")
    assert status == 200, trace
    for p, t in targets(DASHBOARDS["postfix-trace"]):
        if t["parser"] == "jq-backend":
            proc = subprocess.run(["jq", "-c", t["root_selector"]], input=json.dumps(trace), capture_output=True,
                                  text=True, timeout=30, check=False)
            assert proc.returncode == 0, (p["title"], proc.stderr)
            rows = [json.loads(line) for line in proc.stdout.splitlines()]
        else:
            rows = jsonata_path(trace, t["root_selector"])
        assert rows and all(isinstance(r, dict) for r in rows), p["title"]
        for c in t["columns"]:
            assert any(c["selector"] in r for r in rows), f"{p['title']}: no row has {c['selector']}"
