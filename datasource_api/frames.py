"""API items -> Grafana DataFrameJSON (column-major, times in epoch ms, units and links in config)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

TIME_FIELDS = {"time", "first_time", "last_time", "time_end"}
# Grafana's annotation support reads these names from a frame
RENAME = {"time_end": "timeEnd"}

TRACE_LINK = {"title": "Trace",
              "url": "/d/postfix-trace/message-trace?var-queue_id=${__value.raw}"
                     "&var-host=${__data.fields.host}&${__url_time_range}"}
SEARCH_LINKS = {
    "domain": {"title": "Messages to this domain",
               "url": "/d/postfix-search/message-search?var-domain=${__value.raw}&${__url_time_range}"},
    "dsn": {"title": "Messages with this DSN",
            "url": "/d/postfix-search/message-search?var-dsn=${__value.raw}&${__url_time_range}"},
    "sender": {"title": "Messages from this sender",
               "url": "/d/postfix-search/message-search?var-sender=${__value.raw}&${__url_time_range}"},
    "recipient": {"title": "Messages to this recipient",
                  "url": "/d/postfix-search/message-search?var-recipient=${__value.raw}&${__url_time_range}"},
}
STATUS_COLORS = {"sent": "green", "deferred": "orange", "bounced": "red", "expired": "dark-red",
                 "rejected": "purple", "pending": "blue", "held": "yellow", "discarded": "gray"}
UNITS = {"delay_seconds": "s", "p50_delay_seconds": "s", "p95_delay_seconds": "s", "max_delay_seconds": "s",
         "bounce_rate": "percentunit", "defer_rate": "percentunit", "share": "percentunit", "rate": "percentunit",
         "size": "decbytes"}


def _ms(value: Any) -> Any:
    if isinstance(value, str):
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    return value


def _type(name: str, values: list[Any]) -> str:
    if name in TIME_FIELDS:
        return "time"
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, (int, float)):
        return "number"
    if sample is None or isinstance(sample, str):
        return "string"
    return "other"


def _config(name: str, links: bool) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if name in UNITS:
        config["unit"] = UNITS[name]
    if name == "status":
        config["mappings"] = [{"type": "value", "options": {
            s: {"color": c, "index": i} for i, (s, c) in enumerate(STATUS_COLORS.items())}}]
    if links and name == "queue_id":
        config["links"] = [TRACE_LINK]
    elif links and name in SEARCH_LINKS:
        config["links"] = [SEARCH_LINKS[name]]
    return config


def frame(name: str, items: list[dict[str, Any]], columns: list[str] | None = None, *,
          visualisation: str = "table", links: bool = True) -> dict[str, Any]:
    """One DataFrameJSON from row objects; `columns` fixes the field order (and the fields of
    an empty frame)."""
    cols = columns or (list(items[0]) if items else [])
    fields, values = [], []
    for col in cols:
        column = [item.get(col) for item in items]
        ftype = _type(col, column)
        if ftype == "time":
            column = [_ms(v) for v in column]
        fields.append({"name": RENAME.get(col, col), "type": ftype, "config": _config(col, links)})
        values.append(column)
    return {"schema": {"name": name, "refId": None, "meta": {"preferredVisualisationType": visualisation},
                       "fields": fields}, "data": {"values": values}}


def trace_frames(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A trace as frames: message (field/value rows), recipients, attempts, links, lines."""
    if not items:
        return []
    first = items[0]
    message = [{"field": k, "value": None if v is None else str(v)} for k, v in
               {"host": first["host"], "queue_id": first["queue_id"], **first["message"]}.items()]
    recipients = [{k: v for k, v in r.items() if k != "attempts"} for r in first["recipients"]]
    attempts = [{"queue_id": r["queue_id"], "recipient": r["recipient"], **a}
                for r in first["recipients"] for a in r["attempts"]]
    return [frame("message", message, ["field", "value"], links=False),
            frame("recipients", recipients, ["queue_id", "recipient", "orig_recipient", "status", "dsn", "relay",
                                             "delay_seconds", "response", "tls"]),
            frame("attempts", attempts, ["time", "queue_id", "recipient", "status", "dsn", "relay", "delay_seconds",
                                         "response", "tls"]),
            frame("links", first["links"], ["time", "kind", "parent_queue_id", "child_queue_id"], links=False),
            frame("lines", first["lines"], ["time", "queue_id", "line"], visualisation="logs", links=False)]
