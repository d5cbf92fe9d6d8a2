"""The data-source API (/api/v1) on a real aiohttp server over real DuckDB stores: one ingested
from the generator, one from the maillog a real Postfix wrote (tests/data)."""
from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DATA, run_cli
from datasource_api import openapi
from exporter.app import build_app
from exporter.generator import generate
from exporter.settings import load

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
ALL = {"from": "0", "to": "2200-01-01T00:00:00Z"}
TOKEN = "s3cret-token-0123456789"


@pytest.fixture(scope="module")
def gen_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("gen")
    log = d / "mail.log"
    generate(str(log), 30_000, seed=11, start=START, hosts=("mx1", "mx2"), timestamp_format="rfc3339")
    run_cli("ingest", "--db", str(d / "store.duckdb"), str(log), str(DATA / "golden" / "hostile.log"),
            "--year", "2026", "--timezone", "UTC")
    return d / "store.duckdb"


@pytest.fixture(scope="module")
def postfix_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("postfix")
    run_cli("ingest", "--db", str(d / "store.duckdb"), "--year", "2026", "--timezone", "UTC",
            str(DATA / "postfix-e2e-maillog.log"))
    return d / "store.duckdb"


def _config(db: Path, **api: Any):
    return load(flags={"store.path": str(db), "http.listen": "127.0.0.1:0", "metrics.postqueue_command": ["true"],
                       **{f"api.{k}": v for k, v in api.items()}}, environ={})


@pytest.fixture
async def client(aiohttp_client, gen_store: Path):  # type: ignore[no-untyped-def]
    return await aiohttp_client(build_app(_config(gen_store)))


async def get(client, path: str, params: Any = None, status: int = 200, **kw: Any) -> dict:  # type: ignore[no-untyped-def]
    resp = await client.get(path, params=params, **kw)
    body = await resp.json()
    assert resp.status == status, body
    assert resp.content_type == "application/json"
    return body


def _validate(path: str, body: dict, status: int = 200) -> None:
    jsonschema.validate(body, openapi.response_schema(path, status))


async def all_pages(client, params: list[tuple[str, str]]) -> list[dict]:  # type: ignore[no-untyped-def]
    items, cursor = [], None
    while True:
        body = await get(client, "/api/v1/messages", params + ([("cursor", cursor)] if cursor else []))
        items += body["items"]
        cursor = body["next_cursor"]
        assert body["truncated"] == (cursor is not None)
        if not cursor:
            return items


# ---- search -----------------------------------------------------------------------------

async def test_search_by_domain_pages_by_cursor_without_gaps_or_repeats(client) -> None:  # type: ignore[no-untyped-def]
    domain = (await get(client, "/api/v1/values/domain"))["items"][0]["value"]
    whole = await get(client, "/api/v1/messages", {"domain": domain, "limit": "5000", **ALL})
    assert len(whole["items"]) > 100 and not whole["truncated"]
    assert all(r["recipient"].lower().endswith("@" + domain) for r in whole["items"])
    paged = await all_pages(client, [("domain", domain), ("limit", "37"), *ALL.items()])
    assert paged == whole["items"]
    keys = [(r["host"], r["queue_id"], r["recipient"], r["status"], r["time"], r["response"]) for r in paged]
    assert len(keys) == len(set(keys))
    times = [datetime.fromisoformat(r["time"]) for r in paged]
    assert times == sorted(times, reverse=True)


async def test_search_items_carry_every_record_field_and_a_working_trace_link(client) -> None:  # type: ignore[no-untyped-def]
    body = await get(client, "/api/v1/messages", {"status": "bounced", "limit": "3"})
    _validate("/api/v1/messages", body)
    rec = body["items"][0]
    assert list(rec) == ["time", "host", "queue_id", "message_id", "sender", "recipient", "orig_recipient", "subject",
                         "status", "dsn", "relay", "delay_seconds", "attempts", "response", "client_ip", "tls",
                         "trace_url"]
    assert rec["status"] == "bounced" and rec["dsn"].startswith("5.")
    trace = await get(client, rec["trace_url"])
    assert trace["items"][0]["queue_id"] == rec["queue_id"]
    assert any(r["recipient"] == rec["recipient"] for r in trace["items"][0]["recipients"])


@pytest.fixture(scope="module")
def cli_deferred(gen_store: Path) -> list[dict]:
    """The CLI's answer, taken while no test holds the store open."""
    return [json.loads(x) for x in run_cli("search", "--db", str(gen_store), "--status", "deferred", "--status",
                                           "bounced", "--dsn", "4", "--format", "json", "--limit", "100000")
            .stdout.decode().splitlines()]


async def test_search_filters_combine_and_agree_with_the_cli(cli_deferred: list[dict], client) -> None:  # type: ignore[no-untyped-def]
    api = await all_pages(client, [("status", "deferred,bounced"), ("dsn", "4"), ("limit", "1000"), *ALL.items()])
    assert api and {r["status"] for r in api} == {"deferred"} and all(r["dsn"].startswith("4.") for r in api)
    cli = cli_deferred
    assert [{k: v for k, v in r.items() if k != "trace_url"} for r in api] == cli
    repeated = await all_pages(client, [("status", "deferred"), ("status", "bounced"), ("dsn", "4"), *ALL.items()])
    assert repeated == api


async def test_subject_search_is_case_insensitive_and_like_metacharacters_are_literal(client) -> None:  # type: ignore[no-untyped-def]
    hostile = await get(client, "/api/v1/messages", {"subject": "<SCRIPT>"})
    assert hostile["items"] and all("<script>" in r["subject"].lower() for r in hostile["items"])
    assert (await get(client, "/api/v1/messages", {"subject": "%"}))["items"] == []
    assert (await get(client, "/api/v1/messages", {"recipient": "x' OR '1'='1"}))["items"] == []


async def test_sort_by_delay_and_min_delay(client) -> None:  # type: ignore[no-untyped-def]
    body = await get(client, "/api/v1/messages", {"sort": "-delay", "min_delay": "5", "limit": "50"})
    delays = [r["delay_seconds"] for r in body["items"]]
    assert delays and delays == sorted(delays, reverse=True) and min(delays) >= 5


async def test_limit_is_capped_by_the_setting_and_says_truncated(aiohttp_client, gen_store: Path) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(build_app(_config(gen_store, max_limit=10)))
    body = await get(client, "/api/v1/messages", {"limit": "1000"})
    assert len(body["items"]) == 10 and body["truncated"] and body["next_cursor"] and body["meta"]["limit"] == 10


# ---- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("params, parameter", [
    ({"from": "yesterday-ish"}, "from"),
    ({"limit": "0"}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"status": "lost"}, "status"),
    ({"dsn": "9.9.9"}, "dsn"),
    ({"sort": "size"}, "sort"),
    ({"cursor": "garbage"}, "cursor"),
    # one a version before schema 5 gave out: its row key a string
    ({"cursor": base64.urlsafe_b64encode(b'["-time","2026-11-01T00:00:00","r1:a@b.example:"]').decode()}, "cursor"),
    ({"recipeint": "a@b"}, "recipeint"),
    ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"),
    ({"min_delay": "-1"}, "min_delay"),
])
async def test_bad_parameters_get_400_naming_the_parameter(client, params: dict, parameter: str) -> None:  # type: ignore[no-untyped-def]
    body = await get(client, "/api/v1/messages", params, status=400)
    assert body["error"]["status"] == 400 and body["error"]["parameter"] == parameter
    assert parameter in body["error"]["message"]
    _validate("/api/v1/messages", body, 400)


async def test_unknown_routes_and_names_are_json_404s(client) -> None:  # type: ignore[no-untyped-def]
    for path in ("/api/v1/nope", "/api/v1/stats/bogus", "/api/v1/values/password", "/api/v1/messages/NOSUCHID"):
        body = await get(client, path, status=404)
        assert body["error"]["status"] == 404 and body["error"]["message"]


async def test_a_slow_query_is_interrupted_with_503(aiohttp_client, gen_store: Path) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(build_app(_config(gen_store, query_timeout_seconds=0.000001)))
    body = await get(client, "/api/v1/stats/domains", ALL, status=503)
    assert "stopped" in body["error"]["message"]
    # the service goes on answering
    client2 = await aiohttp_client(build_app(_config(gen_store)))
    await get(client2, "/api/v1/health")


# ---- trace -------------------------------------------------------------------------------

async def test_trace_lists_recipients_attempts_links_and_raw_lines(client) -> None:  # type: ignore[no-untyped-def]
    deferred = await get(client, "/api/v1/messages", {"status": "sent", "min_delay": "60", "limit": "200"})
    multi = next(r for r in deferred["items"] if r["attempts"] > 1)
    body = await get(client, f"/api/v1/messages/{multi['queue_id']}", {"host": multi["host"]})
    _validate("/api/v1/messages/{queue_id}", body)
    inst = body["items"][0]
    rcpt = next(r for r in inst["recipients"] if r["recipient"] == multi["recipient"])
    assert [a["status"] for a in rcpt["attempts"]][-1] == "sent" and len(rcpt["attempts"]) == multi["attempts"]
    assert "deferred" in [a["status"] for a in rcpt["attempts"]]
    assert any(f"{multi['queue_id']}: to=<{multi['recipient']}>" in line["line"] for line in inst["lines"])
    bounced = (await get(client, "/api/v1/messages", {"status": "bounced", "limit": "50"}))["items"]
    linked = [i for r in bounced for i in (await get(client, r["trace_url"]))["items"] if len(i["instances"]) > 1]
    assert linked, "a bounce notice links a new queue ID"
    assert {i["role"] for i in linked[0]["instances"]} >= {"this", "child"}
    assert linked[0]["links"][0]["child_queue_id"]


# ---- statistics --------------------------------------------------------------------------

STAT_COLUMNS = {
    "volume": ["time", "received", "sent", "deferred", "bounced", "expired", "rejected"],
    "rates": ["time", "bounce_rate", "defer_rate", "final"],
    "sla": ["time", "delivered", "within", "share"],
    "domains": ["domain", "records", "sent", "deferred", "bounced", "rejected", "bounce_rate", "defer_rate"],
    "slow-domains": ["domain", "deliveries", "p50_delay_seconds", "p95_delay_seconds", "max_delay_seconds"],
    "dsn": ["domain", "dsn", "status", "records"],
    "rejects": ["reason", "code", "records"],
    "tls-coverage": ["domain", "deliveries", "tls", "share"],
    "dkim": ["time", "received", "signed", "rate"],
    "heatmap": ["weekday", "hour", "messages"],
    "top-senders": ["sender", "messages", "recipients", "bounced", "deferred"],
    "top-recipients": ["recipient", "records", "bounced", "deferred"],
}
RANGE = {"from": "2026-10-31T00:00:00Z", "to": "2026-11-03T00:00:00Z"}


@pytest.mark.parametrize("name", list(STAT_COLUMNS))
async def test_each_statistic_has_its_documented_columns_and_data(client, name: str) -> None:  # type: ignore[no-untyped-def]
    body = await get(client, f"/api/v1/stats/{name}", {**RANGE, "interval": "1h"})
    _validate("/api/v1/stats/{name}", body)
    assert body["items"], name
    assert all(list(row) == STAT_COLUMNS[name] for row in body["items"])
    if "time" in STAT_COLUMNS[name]:
        times = [datetime.fromisoformat(r["time"]) for r in body["items"]]
        assert all(b - a == timedelta(hours=1) for a, b in zip(times, times[1:])), "every bucket present"
        assert len(times) == 72
    frames = await get(client, f"/api/v1/stats/{name}", {**RANGE, "interval": "1h", "format": "frames"})
    _validate("/api/v1/stats/{name}", frames)
    frame = frames["items"][0]
    assert [f["name"] for f in frame["schema"]["fields"]] == STAT_COLUMNS[name]
    assert all(len(col) == len(body["items"]) for col in frame["data"]["values"])


async def test_statistics_agree_with_the_search_they_link_to(client) -> None:  # type: ignore[no-untyped-def]
    volume = (await get(client, "/api/v1/stats/volume", {**RANGE, "interval": "6h"}))["items"]
    for status in ("sent", "bounced", "deferred", "rejected"):
        found = await all_pages(client, [("status", status), ("limit", "5000"), *RANGE.items()])
        assert sum(b[status] for b in volume) == len(found), status
    domains = (await get(client, "/api/v1/stats/domains", {**RANGE, "limit": "3"}))["items"]
    top = domains[0]
    found = await all_pages(client, [("domain", top["domain"]), ("status", "bounced,expired"), ("limit", "5000"),
                                     *RANGE.items()])
    assert top["bounced"] == len(found)
    summary = (await get(client, "/api/v1/stats/summary", {**RANGE, "domain": top["domain"]}))["items"][0]
    assert summary["records"] == top["records"] == len(
        await all_pages(client, [("domain", top["domain"]), ("limit", "5000"), *RANGE.items()]))
    dsn = (await get(client, "/api/v1/stats/dsn", {**RANGE, "limit": "1"}))["items"][0]
    found = await all_pages(client, [("domain", dsn["domain"]), ("dsn", dsn["dsn"]), ("status", dsn["status"]),
                                     *RANGE.items()])
    assert len(found) == dsn["records"]
    heat = (await get(client, "/api/v1/stats/heatmap", RANGE))["items"]
    assert len(heat) == 7 * 24 and sum(c["messages"] for c in heat) == sum(sum(b[s] for s in (
        "sent", "deferred", "bounced", "expired", "rejected")) for b in volume) + len(
        await all_pages(client, [("status", "pending,held,discarded"), *RANGE.items()]))


async def test_rates_sla_and_tls_shares_are_fractions(client) -> None:  # type: ignore[no-untyped-def]
    rates = (await get(client, "/api/v1/stats/rates", RANGE))["items"]
    assert any(r["bounce_rate"] for r in rates)
    assert all(0 <= (r[k] or 0) <= 1 for r in rates for k in ("bounce_rate", "defer_rate"))
    sla = (await get(client, "/api/v1/stats/sla", {**RANGE, "threshold_seconds": "1"}))["items"]
    sla_all = (await get(client, "/api/v1/stats/sla", {**RANGE, "threshold_seconds": "100000"}))["items"]
    assert sum(b["within"] for b in sla) < sum(b["within"] for b in sla_all) == sum(b["delivered"] for b in sla_all)
    tls = (await get(client, "/api/v1/stats/tls-coverage", RANGE))["items"]
    assert all(0 <= r["share"] <= 1 for r in tls) and any(0 < r["share"] for r in tls)


async def test_too_many_buckets_is_a_400(client) -> None:  # type: ignore[no-untyped-def]
    body = await get(client, "/api/v1/stats/volume", {"from": "0", "to": "now", "interval": "1m"}, status=400)
    assert body["error"]["parameter"] == "interval"


# ---- values, annotations, frames ---------------------------------------------------------

async def test_values_for_template_variables(client) -> None:  # type: ignore[no-untyped-def]
    body = await get(client, "/api/v1/values/domain", {"prefix": "G"})
    _validate("/api/v1/values/{field}", body)
    assert body["items"] and all(v["value"].startswith("g") for v in body["items"])
    counts = [v["count"] for v in body["items"]]
    assert counts == sorted(counts, reverse=True)
    hosts = {v["value"] for v in (await get(client, "/api/v1/values/host"))["items"]}
    assert {"mx1", "mx2"} <= hosts


async def test_annotations_mark_per_domain_spikes(client) -> None:  # type: ignore[no-untyped-def]
    body = await get(client, "/api/v1/annotations", {**RANGE, "threshold": "0.05", "min_records": "3",
                                                     "kind": "bounce", "interval": "6h"})
    _validate("/api/v1/annotations", body)
    assert body["items"]
    a = body["items"][0]
    assert a["tags"] == ["postfix", "bounce", a["domain"]] and a["rate"] >= 0.05 and a["records"] >= 3
    assert datetime.fromisoformat(a["time_end"]) > datetime.fromisoformat(a["time"])
    assert a["domain"] in a["title"]
    none = await get(client, "/api/v1/annotations", {**RANGE, "threshold": "1", "min_records": "100000"})
    assert none["items"] == []


async def test_frames_carry_types_units_and_trace_links(client) -> None:  # type: ignore[no-untyped-def]
    body = await get(client, "/api/v1/messages", {"status": "bounced", "limit": "5", "format": "frames"})
    _validate("/api/v1/messages", body)
    [frame] = body["items"]
    fields = {f["name"]: f for f in frame["schema"]["fields"]}
    assert fields["time"]["type"] == "time" and isinstance(frame["data"]["values"][0][0], int)
    assert fields["delay_seconds"]["config"]["unit"] == "s"
    assert "/d/postfix-trace/message-trace?var-queue_id=${__value.raw}" in fields["queue_id"]["config"]["links"][0]["url"]
    trace_url = frame["data"]["values"][list(fields).index("trace_url")][0]
    frames = (await get(client, trace_url.replace("?", "?format=frames&")))["items"]
    assert [f["schema"]["name"] for f in frames] == ["message", "recipients", "attempts", "links", "lines"]


async def test_health_and_openapi(client) -> None:  # type: ignore[no-untyped-def]
    body = await get(client, "/api/v1/health")
    _validate("/api/v1/health", body)
    assert body["items"][0]["status"] == "ok" and body["items"][0]["store"]["records"] > 0
    doc = await get(client, "/api/v1/openapi.json")
    assert doc["openapi"].startswith("3.1") and set(openapi.ENDPOINTS) <= set(doc["paths"])
    params = {p["name"] for p in doc["paths"]["/api/v1/messages"]["get"]["parameters"]}
    assert {"from", "to", "recipient", "domain", "status", "dsn", "cursor", "limit", "format"} <= params


# ---- auth and CORS -----------------------------------------------------------------------

async def test_tokens_guard_the_api_but_not_metrics(aiohttp_client, gen_store: Path) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(build_app(_config(gen_store, tokens=[TOKEN])))
    body = await get(client, "/api/v1/health", status=401)
    assert body["error"]["status"] == 401
    await get(client, "/api/v1/health", headers={"Authorization": "Bearer wrong-token-0123456789"}, status=401)
    await get(client, "/api/v1/health", headers={"Authorization": f"Bearer {TOKEN}"})
    basic = base64.b64encode(f"grafana:{TOKEN}".encode()).decode()
    await get(client, "/api/v1/health", headers={"Authorization": f"Basic {basic}"})
    await get(client, "/api/v1/health", cookies={"pi_token": TOKEN})
    assert (await client.get("/metrics")).status == 200
    push = await client.post("/loki/api/v1/push", json={"streams": []})
    assert push.status == 401
    guarded = await aiohttp_client(build_app(_config(gen_store, tokens=[TOKEN], protect_metrics=True)))
    assert (await guarded.get("/metrics")).status == 401
    assert (await guarded.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200


async def test_cors_is_off_unless_an_origin_is_configured(aiohttp_client, gen_store: Path) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(build_app(_config(gen_store)))
    resp = await client.get("/api/v1/health", headers={"Origin": "https://grafana.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers
    client = await aiohttp_client(build_app(_config(gen_store, cors_origins=["https://grafana.example"])))
    resp = await client.options("/api/v1/messages", headers={"Origin": "https://grafana.example"})
    assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "https://grafana.example"
    resp = await client.get("/api/v1/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


# ---- the real-Postfix store --------------------------------------------------------------

async def test_real_postfix_records_through_the_api(aiohttp_client, postfix_store: Path) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(build_app(_config(postfix_store)))
    expected = json.loads((DATA / "postfix-e2e-maillog.log.expected.json").read_text())["records"]
    got = await all_pages(client, [("limit", "7"), *ALL.items()])
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert sorted(({k: v for k, v in r.items() if k != "trace_url"} for r in got), key=key) == sorted(expected, key=key)
    statuses = Counter(r["status"] for r in got)
    assert statuses["sent"] and statuses["bounced"]
    for rec in got:
        if rec["queue_id"]:
            trace = await get(client, rec["trace_url"])
            assert any(rec["queue_id"] in line["line"] for line in trace["items"][0]["lines"])


# ---- fuzzing -----------------------------------------------------------------------------

_KEYS = ["from", "to", "recipient", "sender", "domain", "subject", "queue_id", "status", "dsn", "limit", "cursor",
         "sort", "interval", "prefix", "threshold", "min_records", "format", "host", "min_delay", "kind", "x"]
_VALUES = st.one_of(st.text(max_size=40), st.sampled_from(["0", "-1", "1e309", "now", "24h", "5m", "sent", "5.1",
                                                           "frames", "2026-11-01T00:00:00Z", "%", "'", "\\", "\x00"]))
_PATHS = ["/api/v1/messages", "/api/v1/messages/ABC123", "/api/v1/stats/volume", "/api/v1/stats/domains",
          "/api/v1/stats/slow-domains", "/api/v1/values/domain", "/api/v1/annotations", "/api/v1/health"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(_PATHS), params=st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=5))
async def test_fuzzed_parameters_never_give_a_500(client, path: str, params: dict) -> None:  # type: ignore[no-untyped-def]
    resp = await client.get(path, params=params)
    text = await resp.text()
    assert resp.status in (200, 400, 404), text
    assert "Traceback" not in text
    body = json.loads(text)
    assert ("items" in body) if resp.status == 200 else body["error"]["status"] == resp.status
    template = {"/api/v1/messages/ABC123": "/api/v1/messages/{queue_id}"}.get(path, path)
    template = "/api/v1/stats/{name}" if path.startswith("/api/v1/stats/") else template
    template = "/api/v1/values/{field}" if path.startswith("/api/v1/values/") else template
    _validate(template, body, resp.status)  # every answer, good or bad, is the documented shape
