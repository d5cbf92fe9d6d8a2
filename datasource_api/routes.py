"""HTTP read side over the store (the first part of the data-source API).

Read-only: each request gets its own DuckDB cursor on the service's database, so queries
see whole committed batches and run off the event loop while ingest goes on. One success
shape (`items`, `truncated`, `next_cursor`) and one error shape for every endpoint.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import duckdb
from aiohttp import web
from pydantic import ValidationError

from datasource_api.queries import SearchFilter, search, stats, trace
from exporter.records import iso_utc

CURSORS = web.AppKey("cursor_factory", Callable[[], duckdb.DuckDBPyConnection])
MAX_LIMIT = 10_000


def _json(value: Any) -> Any:
    return iso_utc(value) if isinstance(value, datetime) else str(value)


def ok(items: Any, *, truncated: bool = False, **extra: Any) -> web.Response:
    body = {"items": items, "truncated": truncated, "next_cursor": None, **extra}
    return web.json_response(body, dumps=lambda v: json.dumps(v, default=_json, ensure_ascii=False))


def bad_request(exc: ValidationError | ValueError) -> web.Response:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        param = ".".join(str(x) for x in err["loc"])
        message = err["msg"]
    else:
        param, message = None, str(exc)
    return web.json_response({"error": {"status": 400, "message": message, "parameter": param}}, status=400)


async def _run(request: web.Request, fn: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
    def work() -> Any:
        cur = request.app[CURSORS]()
        try:
            return fn(cur)
        finally:
            cur.close()
    return await asyncio.to_thread(work)


async def handle_messages(request: web.Request) -> web.Response:
    q = request.query
    try:
        flt = SearchFilter(**{k: q.get(k) for k in (
            "recipient", "sender", "domain", "sender_domain", "subject", "queue_id", "message_id", "client_ip",
            "dsn", "relay", "host") if q.get(k) is not None},
            status=q.getall("status", []), since=q.get("from") or q.get("since"), until=q.get("to") or q.get("until"),
            limit=q.get("limit", "100"))
    except (ValidationError, ValueError) as exc:
        return bad_request(exc)
    flt.limit = min(flt.limit, MAX_LIMIT)
    records = await _run(request, lambda cur: search(cur, flt))
    return ok(records, truncated=len(records) >= flt.limit)


async def handle_trace(request: web.Request) -> web.Response:
    queue_id = request.match_info["queue_id"]
    host = request.query.get("host")
    instances = await _run(request, lambda cur: trace(cur, queue_id, host))
    if not instances:
        return web.json_response({"error": {"status": 404, "message": f"no message with queue ID {queue_id}"}},
                                 status=404)
    return ok(instances)


async def handle_summary(request: web.Request) -> web.Response:
    try:
        rng = SearchFilter(since=request.query.get("from") or request.query.get("since"),
                           until=request.query.get("to") or request.query.get("until"))
    except (ValidationError, ValueError) as exc:
        return bad_request(exc)
    result = await _run(request, lambda cur: stats(cur, rng.since, rng.until))
    return ok([result])


def register(app: web.Application, cursor_factory: Callable[[], duckdb.DuckDBPyConnection]) -> None:
    app[CURSORS] = cursor_factory
    app.router.add_get("/api/v1/messages", handle_messages)
    app.router.add_get("/api/v1/messages/{queue_id}", handle_trace)
    app.router.add_get("/api/v1/stats/summary", handle_summary)
