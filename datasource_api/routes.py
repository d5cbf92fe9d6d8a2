"""The data-source API under /api/v1 (docs/api.md): search, trace, statistics, variable values,
annotations, health and the OpenAPI document.

Read-only: each request gets its own DuckDB cursor on the service's database, so a query sees
whole committed batches and runs in a worker thread while ingest goes on. Queries are bounded:
a row cap per page, a timeout that interrupts the query, and a limit on how many run at once.
One success shape (`items`, `truncated`, `next_cursor`, `meta`) and one error shape.
"""
from __future__ import annotations

import asyncio
import json
import typing
from collections.abc import Callable
from datetime import datetime, timedelta
from importlib import metadata
from typing import Any, TypeVar
from urllib.parse import quote

import duckdb
from aiohttp import web
from pydantic import BaseModel, ValidationError

from datasource_api import frames, openapi, stats
from datasource_api.models import (
    STAT_NAMES,
    VALUE_FIELDS,
    AnnotationsParams,
    Params,
    SearchParams,
    StatsParams,
    TraceParams,
    ValuesParams,
    parse_interval,
    parse_time,
)
from datasource_api.queries import SearchFilter, decode_cursor, search, trace, values
from exporter.records import iso_utc
from exporter.settings import ApiConfig

CURSORS = web.AppKey("cursor_factory", Callable[[], duckdb.DuckDBPyConnection])
API = web.AppKey("api_config", ApiConfig)
SLOTS = web.AppKey("query_slots", asyncio.Semaphore)
P = TypeVar("P", bound=Params)


class ApiError(Exception):
    def __init__(self, status: int, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.parameter = status, message, parameter

    def response(self) -> web.Response:
        return web.json_response(
            {"error": {"status": self.status, "message": self.message, "parameter": self.parameter}},
            status=self.status)


def _json(value: Any) -> Any:
    return iso_utc(value) if isinstance(value, datetime) else str(value)


def ok(items: list[Any], *, next_cursor: str | None = None, truncated: bool | None = None,
       meta: dict[str, Any] | None = None) -> web.Response:
    body = {"items": items, "truncated": bool(next_cursor) if truncated is None else truncated,
            "next_cursor": next_cursor, "meta": meta or {}}
    return web.json_response(body, dumps=lambda v: json.dumps(v, default=_json, ensure_ascii=False))


def _list_fields(model: type[BaseModel]) -> set[str]:
    out = set()
    for name, info in model.model_fields.items():
        if typing.get_origin(info.annotation) is list:
            out.add(info.alias or name)
    return out


def parse(model: type[P], request: web.Request) -> P:
    """Query string -> model. A list parameter may repeat or be comma-separated; any other
    parameter given twice counts once (the last). An empty value is no filter (Grafana sends
    empty text boxes as `name=`). Errors name the parameter."""
    lists = _list_fields(model)
    data: dict[str, Any] = {}
    for key in set(request.query.keys()):
        got = [v for v in request.query.getall(key) if v.strip()]
        if not got:
            continue
        data[key] = [p.strip() for v in got for p in v.split(",") if p.strip()] if key in lists else got[-1]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(x) for x in err["loc"][:1]) or None
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown parameter {param!r}"
        raise ApiError(400, f"{param}: {msg}" if param else msg, param) from None


async def run_query(request: web.Request, fn: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
    """Run `fn` on a fresh cursor in a worker thread, at most `max_concurrent_queries` at
    once; past `query_timeout_seconds` the query is interrupted and the client gets a 503."""
    app = request.app
    timeout = app[API].query_timeout_seconds
    async with app[SLOTS]:
        cur = app[CURSORS]()

        def work() -> Any:
            try:
                return fn(cur)
            finally:
                cur.close()

        fut = asyncio.get_running_loop().run_in_executor(None, work)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            cur.interrupt()
            try:
                await fut
            except Exception:  # noqa: BLE001 - the interrupt itself
                pass
            raise ApiError(503, f"query took longer than {timeout:g} s and was stopped; "
                                "narrow the time range or add filters") from None


def _range(since: datetime | None, until: datetime | None, default: timedelta | None) -> tuple[Any, Any]:
    if default is not None:
        until = until or parse_time("now")
        since = since or until - default
    if since is not None and until is not None and since >= until:
        raise ApiError(400, "from: must be before to", "from")
    return since, until


def _meta(since: datetime | None, until: datetime | None, **extra: Any) -> dict[str, Any]:
    return {"from": iso_utc(since) if since else None, "to": iso_utc(until) if until else None, **extra}


async def handle_messages(request: web.Request) -> web.Response:
    p = parse(SearchParams, request)
    cfg = request.app[API]
    limit = min(p.limit or cfg.default_limit, cfg.max_limit)
    since, until = _range(p.since, p.until, None)
    if p.cursor:
        try:
            decode_cursor(p.cursor, p.sort)
        except ValueError as exc:
            raise ApiError(400, f"cursor: {exc}", "cursor") from None
    flt = SearchFilter(**p.model_dump(include={
        "recipient", "sender", "domain", "sender_domain", "subject", "queue_id", "message_id", "client_ip", "status",
        "dsn", "relay", "host", "min_delay"}), since=since, until=until, limit=limit)
    records, cursor = await run_query(request, lambda cur: search(cur, flt, p.sort, p.cursor))
    for rec in records:
        qid = rec["queue_id"]
        rec["trace_url"] = (f"/api/v1/messages/{quote(qid, safe='')}?host={quote(rec['host'] or '', safe='')}"
                            if qid else None)
    meta = _meta(since, until, limit=limit, sort=p.sort)
    if p.format == "frames":
        return ok([frames.frame("messages", records, [*records[0]] if records else _RECORD_COLUMNS)],
                  next_cursor=cursor, meta=meta)
    return ok(records, next_cursor=cursor, meta=meta)


_RECORD_COLUMNS = ["time", "host", "queue_id", "message_id", "sender", "recipient", "orig_recipient", "subject",
                   "status", "dsn", "relay", "delay_seconds", "attempts", "response", "client_ip", "tls", "trace_url"]


async def handle_trace(request: web.Request) -> web.Response:
    p = parse(TraceParams, request)
    queue_id = request.match_info["queue_id"]
    if len(queue_id) > 64:
        raise ApiError(400, "queue_id: longer than 64 characters", "queue_id")
    instances = await run_query(request, lambda cur: trace(cur, queue_id, p.host))
    if not instances:
        raise ApiError(404, f"no message with queue ID {queue_id}" + (f" on host {p.host}" if p.host else ""),
                       "queue_id")
    meta = {"queue_id": queue_id, "host": p.host, "instances": len(instances)}
    if p.format == "frames":
        return ok(frames.trace_frames(instances), meta=meta)
    return ok(instances, meta=meta)


def _stats_query(p: StatsParams | AnnotationsParams, interval: str | None) -> stats.StatsQuery:
    since, until = _range(p.since, p.until, timedelta(hours=24))
    iv = parse_interval(interval) if interval else stats.default_interval(since, until)
    return stats.StatsQuery(since=since, until=until, interval=iv, host=p.host, domain=p.domain)


async def handle_stats(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STAT_NAMES:
        raise ApiError(404, f"no statistic named {name!r}; one of {', '.join(STAT_NAMES)}", "name")
    p = parse(StatsParams, request)
    q = _stats_query(p, p.interval)
    q.limit, q.threshold_seconds = p.limit, p.threshold_seconds
    if name in stats.SERIES and stats.bucket_count(q.since, q.until, q.interval) > stats.MAX_BUCKETS:
        raise ApiError(400, f"interval: {p.interval} makes more than {stats.MAX_BUCKETS} buckets over this range",
                       "interval")
    rows = await run_query(request, lambda cur: stats.STATS[name](cur, q))
    meta = _meta(q.since, q.until, statistic=name, interval_seconds=int(q.interval.total_seconds()),
                 shape="series" if name in stats.SERIES else "table")
    if name == "summary":
        meta["note"] = "rates are shares of final outcomes (sent, deferred, bounced, expired)"
    if name in ("volume", "dkim"):
        meta["note"] = "received counts queued messages; the domain filter does not apply to it"
    truncated = name not in stats.SERIES and name not in ("summary", "heatmap") and len(rows) >= p.limit
    if p.format == "frames":
        if name == "summary":
            rows = [{k: v for k, v in rows[0].items() if not isinstance(v, (list, dict))}]
        vis = "graph" if name in stats.SERIES else "table"
        return ok([frames.frame(name, rows, visualisation=vis)], truncated=truncated, meta=meta)
    return ok(rows, truncated=truncated, meta=meta)


async def handle_values(request: web.Request) -> web.Response:
    field = request.match_info["field"]
    if field not in VALUE_FIELDS:
        raise ApiError(404, f"no values for {field!r}; one of {', '.join(VALUE_FIELDS)}", "field")
    p = parse(ValuesParams, request)
    since, until = _range(p.since, p.until, None)
    items, more = await run_query(request, lambda cur: values(cur, field, p.prefix, since, until, p.limit))
    meta = _meta(since, until, field=field, prefix=p.prefix)
    if p.format == "frames":
        return ok([frames.frame(field, items, ["value", "count"], links=False)], truncated=more, meta=meta)
    return ok(items, truncated=more, meta=meta)


async def handle_annotations(request: web.Request) -> web.Response:
    p = parse(AnnotationsParams, request)
    q = _stats_query(p, p.interval)
    if stats.bucket_count(q.since, q.until, q.interval) > stats.MAX_BUCKETS:
        raise ApiError(400, f"interval: {p.interval} makes more than {stats.MAX_BUCKETS} buckets over this range",
                       "interval")
    items = await run_query(request, lambda cur: stats.annotations(cur, q, p.kind, p.threshold, p.min_records))
    meta = _meta(q.since, q.until, interval_seconds=int(q.interval.total_seconds()), threshold=p.threshold,
                 min_records=p.min_records)
    if p.format == "frames":
        cols = ["time", "time_end", "title", "text", "tags", "domain", "kind", "rate", "records"]
        return ok([frames.frame("annotations", items, cols, links=False)], meta=meta)
    return ok(items, meta=meta)


def _version() -> str:
    try:
        return metadata.version("postfix-insights")
    except metadata.PackageNotFoundError:
        return "unknown"


async def handle_health(request: web.Request) -> web.Response:
    p = parse(Params, request)

    def probe(cur: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        records = cur.execute("SELECT count(*) FROM delivery_records").fetchall()[0][0]
        messages, last = cur.execute("SELECT count(*), max(last_ts) FROM messages").fetchall()[0]
        return {"records": records, "messages": messages, "last_time": iso_utc(last) if last else None}

    item = {"status": "ok", "version": _version(), "store": await run_query(request, probe)}
    if p.format == "frames":
        flat = {"status": item["status"], "version": item["version"], **item["store"]}
        return ok([frames.frame("health", [flat], links=False)])
    return ok([item])


async def handle_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi.document(_version()))


def error_middleware() -> Callable:
    """ApiError -> the error shape (the service's catch-all middleware handles the rest)."""
    @web.middleware
    async def api_errors(request: web.Request, handler):  # type: ignore[no-untyped-def]
        try:
            return await handler(request)
        except ApiError as exc:
            return exc.response()
    return api_errors


def register(app: web.Application, cursor_factory: Callable[[], duckdb.DuckDBPyConnection],
             config: ApiConfig | None = None) -> None:
    app[CURSORS] = cursor_factory
    app[API] = config or ApiConfig()
    app[SLOTS] = asyncio.Semaphore(app[API].max_concurrent_queries)
    app.middlewares.append(error_middleware())
    app.router.add_get("/api/v1/messages", handle_messages)
    app.router.add_get("/api/v1/messages/{queue_id}", handle_trace)
    app.router.add_get("/api/v1/stats/{name}", handle_stats)
    app.router.add_get("/api/v1/values/{field}", handle_values)
    app.router.add_get("/api/v1/annotations", handle_annotations)
    app.router.add_get("/api/v1/health", handle_health)
    app.router.add_get("/api/v1/openapi.json", handle_openapi)
