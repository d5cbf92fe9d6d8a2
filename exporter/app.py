"""`postfix-insights serve`: the one place that wires the live service together.

One aiohttp process: the ingest worker thread (files, journald, pushed lines), syslog
listeners, and HTTP routes /metrics, /healthz, the Loki push API and the read API.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from datasource_api import access, pages, routes
from exporter import metrics
from exporter.settings import ServeConfig
from exporter.sources import loki, syslog
from exporter.store import db
from exporter.worker import IngestWorker, QueueFull

log = logging.getLogger(__name__)

WORKER = web.AppKey("worker", IngestWorker)
REGISTRY = web.AppKey("registry", CollectorRegistry)
CONFIG = web.AppKey("config", ServeConfig)
SERVERS = web.AppKey("servers", list)


def error(status: int, message: str) -> web.Response:
    """The service's one error shape (the API's own)."""
    return routes.ApiError(status, message).response()


async def handle_metrics(request: web.Request) -> web.Response:
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = await asyncio.to_thread(encoder, request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": content_type})


async def handle_health(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    h = worker.health
    ok = worker.is_alive() and h.last_error is None
    body = {
        "status": "ok" if ok else "failing",
        "uptime_seconds": round(time.time() - h.started, 3),
        "store": {"path": str(worker.config.store.path), "last_commit": h.last_commit, "batches": h.batches,
                  "error": h.last_error},
        "sources": {"files": worker.config.files.logs, "lag_bytes": h.source_lag_bytes,
                    "lag_seconds": h.source_lag_seconds, "errors": worker.follower.stats.errors},
        "intake": {"queued_lines": h.queued_lines, "max_queued_lines": worker.config.intake.max_queued_lines},
    }
    return web.json_response(body, status=200 if ok else 503)


async def handle_loki_push(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    if request.content_length is not None and request.content_length > cfg.http.max_body_bytes:
        return error(413, f"body larger than {cfg.http.max_body_bytes} bytes")
    body = await request.read()  # aiohttp has already undone a gzip/deflate Content-Encoding
    def decode() -> list[str]:  # off the event loop: a large push must not stall scrapes
        entries = loki.decode(body, request.headers.get("Content-Type"))
        return [loki.to_log_line(e, cfg.intake.host_label) for e in entries]

    try:
        lines = await asyncio.to_thread(decode)
    except loki.PushFormatError as exc:
        return error(400, str(exc))
    if not lines:
        return web.Response(status=204)
    try:
        done = request.app[WORKER].push("loki", lines)
    except QueueFull as exc:
        return error(429, f"ingest queue full: {exc}; retry later")
    try:
        await asyncio.wait_for(asyncio.wrap_future(done), timeout=30)
    except TimeoutError:
        return error(503, "ingest did not commit within 30 s; retry later")
    except Exception as exc:  # noqa: BLE001 - the ingest failure, reported without a stack trace
        return error(500, f"ingest failed: {type(exc).__name__}")
    return web.Response(status=204)


@web.middleware
async def json_errors(request: web.Request, handler):  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return error(404, f"no such endpoint: {request.method} {request.path}")
        return error(exc.status, exc.reason)
    except Exception:  # noqa: BLE001
        log.exception("unhandled error on %s", request.path)
        return error(500, "internal error")


class _SyslogUDP(asyncio.DatagramProtocol):
    def __init__(self, worker: IngestWorker) -> None:
        self.worker = worker
        self.dropped = 0

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            self.worker.push("syslog-udp", [syslog.to_log_line(data, addr[0])])
        except QueueFull:
            self.dropped += 1  # UDP has no back-pressure: count and drop


async def _syslog_tcp(worker: IngestWorker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = (writer.get_extra_info("peername") or ("unknown",))[0]
    frames = syslog.FrameDecoder()
    try:
        while data := await reader.read(65536):
            lines = [syslog.to_log_line(m, peer) for m in frames.feed(data)]
            while lines:
                try:
                    worker.push("syslog-tcp", lines)
                    break
                except QueueFull:
                    await asyncio.sleep(0.2)  # TCP: back-pressure by not reading
    finally:
        writer.close()


def _split(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


def build_app(config: ServeConfig) -> web.Application:
    snapshot = metrics.Snapshot()
    worker = IngestWorker(config, snapshot)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(metrics.StoreCollector(snapshot, kumina=config.metrics.kumina_compat))
    app = web.Application(middlewares=[json_errors, access.cors_middleware(config.api),
                                       access.auth_middleware(config.api)],
                          client_max_size=config.http.max_body_bytes)
    app[WORKER], app[REGISTRY], app[CONFIG] = worker, registry, config
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/healthz", handle_health)
    app.router.add_post("/loki/api/v1/push", handle_loki_push)
    reader = db.cursor(worker.store.con)   # made here, before the worker thread writes
    reader_lock = threading.Lock()

    def cursor() -> duckdb.DuckDBPyConnection:
        with reader_lock:
            return db.cursor(reader)

    routes.register(app, cursor, config.api)
    pages.register(app, tokens=config.api.tokens)
    info_file = Path(str(config.store.path) + ".serve.json")

    async def start(app: web.Application) -> None:
        # lets `postfix-insights search/trace/stats` find this service while it holds the store
        info_file.write_text(json.dumps({"url": f"http://{config.http.listen}", "pid": os.getpid()}))
        worker.start()
        loop = asyncio.get_running_loop()
        servers: list[Any] = []
        if config.syslog.udp_listen:
            host, port = _split(config.syslog.udp_listen)
            transport, _ = await loop.create_datagram_endpoint(lambda: _SyslogUDP(worker), local_addr=(host, port))
            servers.append(transport)
        if config.syslog.tcp_listen:
            host, port = _split(config.syslog.tcp_listen)
            servers.append(await asyncio.start_server(lambda r, w: _syslog_tcp(worker, r, w), host, port))
        app[SERVERS] = servers

    async def stop(app: web.Application) -> None:
        for server in app.get(SERVERS, []):
            server.close()
        worker.stop()
        await asyncio.to_thread(worker.join, 60)
        info_file.unlink(missing_ok=True)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def serve(config: ServeConfig) -> int:
    """Run until SIGTERM or SIGINT (aiohttp turns both into a clean shutdown): the worker
    finishes its batch and commits, then the process exits 0."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = _split(config.http.listen)
    app = build_app(config)
    web.run_app(app, host=host, port=port, handle_signals=True, print=lambda *_: None,
                shutdown_timeout=10)
    worker = app[WORKER]
    return 1 if worker.health.last_error else 0
