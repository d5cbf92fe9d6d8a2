"""`postfix-insights`: ingest, search, trace, stats, export, prune, demo.

This module and app wiring are the only places that import both the ingest side
(exporter) and the read side (datasource_api).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import urllib.parse
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from exporter.config import CorrelatorConfig, ParserConfig, ReaderConfig, StoreConfig, default_db_path
from exporter.ingest import IngestStats, Pipeline
from exporter.sources.files import SourceError, expand
from exporter.store.db import Store, StoreError

EXIT_USAGE = 2
EXIT_ERROR = 1


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, default=None,
                   help=f"DuckDB store (default {default_db_path()}; env POSTFIX_INSIGHTS_DB)")


def _db_path(args: argparse.Namespace) -> Path:
    return args.db or Path(os.environ.get("POSTFIX_INSIGHTS_DB") or default_db_path())


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="postfix-insights", description="Postfix log correlation and message search")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="read Postfix logs (plain, gzip, '-' for stdin) into the store")
    _db_arg(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    _parser_args(p)
    p.add_argument("--batch-mb", type=int, default=24, help="megabytes parsed per transaction")
    p.add_argument("--max-open-messages", type=int, default=CorrelatorConfig().max_open_messages,
                   help="open queue IDs kept; the least recently seen beyond it are evicted (counted)")
    p.add_argument("--expire-after-seconds", type=float, default=CorrelatorConfig().expire_after_seconds,
                   help="an open message unseen this long is closed (counted)")

    p = sub.add_parser("search", help="one row per recipient delivery")
    _db_arg(p)
    for name in ("recipient", "sender", "domain", "sender-domain", "subject", "queue-id", "message-id", "client-ip",
                 "dsn", "relay", "host"):
        p.add_argument(f"--{name}")
    p.add_argument("--status", action="append", default=[], help="repeatable")
    p.add_argument("--since", help="ISO 8601, epoch ms or an age like 24h")
    p.add_argument("--until")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--format", choices=("table", "json"), default="table")

    p = sub.add_parser("trace", help="a message's timeline across linked queue IDs, with raw lines")
    _db_arg(p)
    p.add_argument("queue_id", metavar="QUEUE_ID")
    p.add_argument("--host")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = sub.add_parser("stats", help="volume, status counts and rates, top domains, DSNs, unparsed lines")
    _db_arg(p)
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("--format", choices=("table", "json"), default="table")

    p = sub.add_parser("export", help="write the store to Parquet, partitioned by day")
    _db_arg(p)
    p.add_argument("directory", type=Path)

    p = sub.add_parser("prune", help="drop data older than N days")
    _db_arg(p)
    p.add_argument("--older-than-days", type=float, required=True)

    p = sub.add_parser("serve", help="follow logs, take pushed logs, serve /metrics and /healthz")
    p.add_argument("--config", type=Path, help="TOML settings file (keys as in docs/configuration.md)")
    p.add_argument("--db", type=Path, default=None, help="DuckDB store")
    p.add_argument("--log", action="append", default=[], metavar="GLOB", help="log files to follow (repeatable)")
    p.add_argument("--listen", help="HOST:PORT (default 127.0.0.1:8080)")
    p.add_argument("--syslog-udp", metavar="HOST:PORT")
    p.add_argument("--syslog-tcp", metavar="HOST:PORT")
    p.add_argument("--journald", action="store_true", default=None, help="also read the systemd journal")
    p.add_argument("--kumina-compat", action="store_true", default=None,
                   help="also serve kumina postfix_exporter metric names (dashboard 10013)")
    p.add_argument("--year", type=int)
    p.add_argument("--timezone")

    p = sub.add_parser("demo", help="generate a demo log (unless one is given), ingest it, show results, serve the pages")
    p.add_argument("--db", type=Path, default=None, help="store for the demo (default: a temporary file)")
    p.add_argument("--lines", type=int, default=50_000)
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT of the pages (default 127.0.0.1:8080)")
    p.add_argument("--no-serve", action="store_true", help="only ingest and print; do not serve the pages")
    p.add_argument("files", nargs="*", metavar="FILE")
    _parser_args(p)
    return ap


def _parser_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--year", type=int, help="year of the first year-less syslog line (default: from file mtime)")
    p.add_argument("--timezone", default="localtime", help="zone of syslog timestamps without offset")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (SourceError, StoreError) as exc:
        print(f"postfix-insights: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        print(f"postfix-insights: {where}: {err['msg']}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    expand(args.files)  # a missing or unreadable file fails before the store is touched
    store = Store(StoreConfig(path=_db_path(args)))
    try:
        stats = _ingest(store, args.files, args, ReaderConfig(batch_bytes=args.batch_mb << 20))
    finally:
        store.close()
    _print_ingest(stats)
    return 0


def _ingest(store: Store, files: list[str], args: argparse.Namespace, reader: ReaderConfig | None = None) -> IngestStats:
    from tqdm import tqdm  # a progress bar on stderr, shown only on a terminal

    correlator = CorrelatorConfig(
        max_open_messages=getattr(args, "max_open_messages", CorrelatorConfig().max_open_messages),
        expire_after_seconds=getattr(args, "expire_after_seconds", CorrelatorConfig().expire_after_seconds))
    pipeline = Pipeline(store, reader or ReaderConfig(), ParserConfig(year=args.year, timezone=args.timezone),
                        correlator)
    total = sum(os.path.getsize(f) for f in files if f != "-" and os.path.isfile(f))
    with tqdm(total=total, unit="B", unit_scale=True, disable=not sys.stderr.isatty(), file=sys.stderr,
              desc="ingest") as bar:
        return pipeline.ingest_files(files, progress=bar.update)


def _print_ingest(stats: IngestStats) -> None:
    evicted = sum(stats.evicted.values())
    print(f"ingested {stats.lines} lines ({stats.bytes / 1e6:.1f} MB) from {stats.files} file(s)"
          f"{f', {stats.skipped_files} already ingested' if stats.skipped_files else ''}; "
          f"{stats.messages} message instances touched; {evicted} open instances evicted", file=sys.stderr)


def _read_store(args: argparse.Namespace) -> Store:
    return Store(StoreConfig(path=_db_path(args)), read_only=True)


def _query(args: argparse.Namespace, local: Callable[[Any], Any], path: str, params: list[tuple[str, str]],
           limit: int | None = None) -> Any:
    """Run a read query on the store; while `serve` holds the store (DuckDB allows one writing
    process), ask that service over HTTP instead (following its cursor up to `limit` items),
    with the same result shape."""
    try:
        store = _read_store(args)
    except StoreError as exc:
        info = Path(str(_db_path(args)) + ".serve.json")
        if "lock" not in str(exc).lower() or not info.exists():
            raise
        return _query_service(json.loads(info.read_text())["url"] + path, params, limit, exc)
    try:
        return local(store.con)
    finally:
        store.close()


def _query_service(url: str, params: list[tuple[str, str]], limit: int | None, cause: Exception) -> list[Any]:
    import urllib.error  # only here: http.client and email cost ~20 ms at every start
    import urllib.request
    items: list[Any] = []
    cursor = None
    while True:
        query = params + ([("cursor", cursor)] if cursor else [])
        try:
            with urllib.request.urlopen(url + "?" + urllib.parse.urlencode(query), timeout=60) as resp:
                page = json.loads(resp.read())
        except urllib.error.HTTPError as http_exc:
            body = json.loads(http_exc.read() or b"{}")
            if http_exc.code == 404:
                return []
            raise StoreError(f"the running service answered: {body.get('error', {}).get('message', http_exc)}") \
                from http_exc
        except OSError as os_exc:
            raise StoreError(f"the store is held by a running service that does not answer: {os_exc}") from cause
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor or limit is None or len(items) >= limit:
            return items[:limit] if limit is not None else items


def _params(**values: Any) -> list[tuple[str, str]]:
    out = []
    for key, value in values.items():
        for v in value if isinstance(value, list) else [value]:
            if v is not None:
                out.append((key, str(v)))
    return out


def cmd_search(args: argparse.Namespace) -> int:
    from datasource_api.queries import SearchFilter, search

    flt = SearchFilter(
        recipient=args.recipient, sender=args.sender, domain=args.domain, sender_domain=args.sender_domain,
        subject=args.subject, queue_id=args.queue_id, message_id=args.message_id, client_ip=args.client_ip,
        status=args.status, dsn=args.dsn, relay=args.relay, host=args.host, since=args.since, until=args.until,
        limit=args.limit)
    records = _query(args, lambda con: search(con, flt)[0], "/api/v1/messages", _params(
        recipient=args.recipient, sender=args.sender, domain=args.domain, sender_domain=args.sender_domain,
        subject=args.subject, queue_id=args.queue_id, message_id=args.message_id, client_ip=args.client_ip,
        status=args.status, dsn=args.dsn, relay=args.relay, host=args.host, **{"from": args.since, "to": args.until},
        limit=args.limit), limit=args.limit)
    for rec in records:
        rec.pop("trace_url", None)  # the service's link; the CLI contract has the record keys only
    if args.format == "json":
        out = sys.stdout
        for rec in records:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    else:
        _table(records, ["time", "queue_id", "sender", "recipient", "status", "dsn", "delay_seconds", "attempts",
                         "relay", "subject"])
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from datasource_api.queries import trace

    instances = _query(args, lambda con: trace(con, args.queue_id, args.host),
                       "/api/v1/messages/" + urllib.parse.quote(args.queue_id, safe=""), _params(host=args.host))
    if not instances:
        print(f"postfix-insights: no message with queue ID {args.queue_id}", file=sys.stderr)
        return EXIT_ERROR
    if args.format == "json":
        print(json.dumps(instances, default=_json_default, ensure_ascii=False, indent=2))
        return 0
    for n, inst in enumerate(instances):
        if n:
            print()
        m = inst["message"]
        print(f"== {inst['host']} {inst['queue_id']}  {m['first_time']} .. {m['last_time']}  ({m['status']})")
        for key in ("sender", "message_id", "subject", "client_host", "client_ip", "sasl_user", "size", "nrcpt",
                    "dkim_domain", "dkim_result"):
            if m[key] not in (None, ""):
                print(f"   {key:12} {_safe(m[key])}")
        if len(inst["instances"]) > 1:
            print("-- linked queue IDs")
            for other in inst["instances"]:
                if other["role"] != "this":
                    print(f"   {other['queue_id']}  {other['role']}  {other['first_time']}  {_safe(other['sender'])}")
            for link in inst["links"]:
                print(f"   {link['time']}  {link['parent_queue_id']} -> {link['child_queue_id']}  ({link['kind']})")
        if inst["recipients"]:
            print("-- recipients and delivery attempts")
            for r in inst["recipients"]:
                print(f"   {r['queue_id']}  {_safe(r['recipient'])}  {r['status']}  {r['dsn'] or ''}")
                for a in r["attempts"]:
                    print(f"      {a['time']}  {a['status']}  {a['dsn'] or ''}  {_safe(a['relay'])}  "
                          f"{_safe(a['response'])}")
        print("-- log lines")
        for line in inst["lines"]:
            print(f"   {_safe(line['line'])}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from datasource_api.queries import SearchFilter, stats

    rng = SearchFilter(since=args.since, until=args.until)
    # the service defaults to the last 24 h; the CLI's default is everything
    result = _query(args, lambda con: stats(con, rng.since, rng.until), "/api/v1/stats/summary",
                    _params(**{"from": args.since or "0", "to": args.until or "2200-01-01T00:00:00Z"}))
    if isinstance(result, list):
        result = result[0]
    if args.format == "json":
        print(json.dumps(result, default=_json_default, ensure_ascii=False))
        return 0
    _print_stats(result)
    return 0


def _print_stats(result: dict[str, Any]) -> None:
    print(f"lines {result['lines']}   messages received {result['messages_received']}   "
          f"delivery records {result['records']}")
    print("by status:   " + "   ".join(f"{k} {v}" for k, v in result["by_status"].items()))
    rates = [f"{k.removesuffix('_rate')} {v:.1%}" for k, v in result.items() if k.endswith("_rate") and v is not None]
    if rates:
        print("rates:       " + "   ".join(rates))
    if result["top_domains"]:
        print("\ntop recipient domains")
        _table(result["top_domains"], ["domain", "records", "sent", "deferred", "bounced", "rejected"])
    if result["dsn"]:
        print("\nDSN breakdown")
        _table(result["dsn"], ["dsn", "status", "records"])
    if result["line_counts"]:
        print("\nlines not turned into events")
        _table(result["line_counts"], ["category", "name", "lines"])


def cmd_export(args: argparse.Namespace) -> int:
    from exporter.store.archive import export_parquet

    store = Store(StoreConfig(path=_db_path(args)), read_only=True)
    try:
        written = export_parquet(store.con, args.directory)
    finally:
        store.close()
    for table, n in written.items():
        print(f"{table}: {n} rows", file=sys.stderr)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from exporter.store.archive import prune

    store = Store(StoreConfig(path=_db_path(args)))
    try:
        removed = prune(store, args.older_than_days)
    finally:
        store.close()
    print(f"removed {removed} message instances and their records", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from datasource_api.queries import SearchFilter, search, stats

    workdir = Path(tempfile.mkdtemp(prefix="postfix-insights-demo-"))
    files = args.files
    if not files:
        from exporter import generator

        log = workdir / "demo-mail.log"
        print(f"generating a demo log of about {args.lines} lines: {log}", file=sys.stderr)
        # about three days of traffic ending now, so the pages' default time ranges show it:
        # a dry run says where the log ends (retries and expiries run past the last arrival),
        # and the same log, shifted back by that much, is written
        days = 3
        now = datetime.now(timezone.utc).replace(microsecond=0)
        rate = args.lines / 12 / (days * 86400)  # a session logs about 12 lines
        options = {"seed": 7, "hosts": ("mx1", "mx2"), "timestamp_format": "rfc3339", "messages_per_second": rate}
        dry = generator.generate(io.BytesIO(), args.lines, start=now - timedelta(days=days), **options)
        start = now - timedelta(days=days, microseconds=dry.last_us - int(now.timestamp() * 1e6))
        made = generator.generate(log, args.lines, start=start, **options)
        print(f"{made.lines} lines, {made.messages} queue IDs, {made.records} delivery records, "
              f"{start:%Y-%m-%d %H:%M} to {datetime.fromtimestamp(made.last_us / 1e6, timezone.utc):%Y-%m-%d %H:%M} UTC",
              file=sys.stderr)
        files = [str(log)]
    db = args.db or workdir / "demo.duckdb"
    store = Store(StoreConfig(path=db))
    try:
        _print_ingest(_ingest(store, files, args))
        result = stats(store.con)
        print()
        _print_stats(result)
        print("\nlatest bounces")
        _table(search(store.con, SearchFilter(status=["bounced"], limit=5))[0],
               ["time", "queue_id", "recipient", "dsn", "response"])
    finally:
        store.close()
    exe = sys.argv[0] if sys.argv[0].endswith("postfix-insights") else "postfix-insights"
    print(f"\nstore: {db}\ntry:   {exe} search --db {db} --status deferred --format json"
          f"\n       {exe} trace --db {db} QUEUE_ID", file=sys.stderr)
    if args.no_serve:
        return 0
    from exporter import app, settings

    config = settings.load(flags={"store.path": str(db), "files.logs": files, "http.listen": args.listen,
                                  "parser.year": args.year, "parser.timezone": args.timezone})
    print(f"\nserving the demo store: open http://{config.http.listen}/ in a browser "
          f"(search, trace, delivery health; /metrics for Prometheus). Ctrl-C stops.", file=sys.stderr)
    try:
        return app.serve(config)
    except OSError as exc:
        print(f"postfix-insights: cannot listen on {config.http.listen}: {exc.strerror or exc}; "
              "pick another with --listen HOST:PORT", file=sys.stderr)
        return EXIT_ERROR


def cmd_serve(args: argparse.Namespace) -> int:
    from exporter import app, settings

    try:
        config = settings.load(args.config, {
            "store.path": str(args.db) if args.db else None, "files.logs": args.log, "http.listen": args.listen,
            "syslog.udp_listen": args.syslog_udp, "syslog.tcp_listen": args.syslog_tcp,
            "journald.enabled": args.journald, "metrics.kumina_compat": args.kumina_compat, "parser.year": args.year, "parser.timezone": args.timezone})
    except settings.SettingsError as exc:
        print(f"postfix-insights: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return app.serve(config)


COMMANDS = {"serve": cmd_serve, "ingest": cmd_ingest, "search": cmd_search, "trace": cmd_trace, "stats": cmd_stats,
            "export": cmd_export, "prune": cmd_prune, "demo": cmd_demo}


def _safe(value: Any) -> str:
    """Terminal-safe text: subjects and replies are attacker-controlled (no escape sequences)."""
    text = "" if value is None else str(value)
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        from exporter.records import iso_utc
        return iso_utc(value)
    return str(value)


def _table(rows: list[dict[str, Any]], cols: list[str], width: int = 48) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[_safe(r.get(c))[:width] for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


if __name__ == "__main__":
    sys.exit(main())
