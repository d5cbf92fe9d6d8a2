"""pydantic models of every request and response of the data-source API.

The OpenAPI document (datasource_api/openapi.py) is generated from these, and the contract
test validates live responses against it, so a field added here is documented and checked.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from exporter.records import Status

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DSN = re.compile(r"^[245](\.\d{1,3}){0,2}\.?$")
STATUSES = tuple(s.value for s in Status)


def parse_time(value: str | int | float | datetime, now: datetime | None = None) -> datetime:
    """ISO 8601, epoch milliseconds (Grafana's ${__timeFrom}), `now`, or an age like '24h' / '7d'.
    Returns naive UTC, as the store keeps it."""
    now = now or datetime.now(timezone.utc)
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        try:
            ts = datetime.fromtimestamp(int(value) / 1000, timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"epoch milliseconds out of range: {value!r}") from exc
    else:
        text = value.strip()
        m = _RELATIVE.match(text)
        if m:
            ts = now - timedelta(seconds=float(m[1]) * _UNITS[m[2]])
        elif text == "now":
            ts = now
        else:
            try:
                ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError as exc:
                raise ValueError(f"not a time: {value!r} (use ISO 8601, epoch ms, now, or an age like 24h)") from exc
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).replace(tzinfo=None)


def check_dsn(value: str | None) -> str | None:
    """A DSN filter: a whole enhanced status code or a prefix of one."""
    if value is not None and not _DSN.match(value):
        raise ValueError("dsn must look like 5, 5.1 or 5.1.1")
    return value


def parse_interval(value: str) -> timedelta:
    """'30s', '5m', '1h', '1d' (Grafana's $__interval values) -> timedelta."""
    m = _RELATIVE.match(value.strip())
    if not m:
        raise ValueError(f"not an interval: {value!r} (use e.g. 30s, 5m, 1h, 1d)")
    seconds = float(m[1]) * _UNITS[m[2]]
    if seconds < 1:
        raise ValueError(f"interval {value!r} is shorter than one second")
    return timedelta(seconds=seconds)


# ---- requests -------------------------------------------------------------------------

class Params(BaseModel):
    """Query-string parameters. Unknown ones are an error naming them."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    format: Literal["json", "frames"] = Field("json", description="frames: Grafana DataFrameJSON in items")


class RangeParams(Params):
    since: datetime | None = Field(None, alias="from", description="epoch ms, ISO 8601, now, or an age like 24h")
    until: datetime | None = Field(None, alias="to", description="epoch ms, ISO 8601, now, or an age like 24h")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _time(cls, v: Any) -> Any:
        return None if v is None or v == "" else parse_time(v)


class SearchParams(RangeParams):
    recipient: str | None = Field(None, max_length=1000, description="exact; also matches the original recipient")
    sender: str | None = Field(None, max_length=1000)
    domain: str | None = Field(None, max_length=255, description="recipient domain")
    sender_domain: str | None = Field(None, max_length=255)
    subject: str | None = Field(None, max_length=1000, description="case-insensitive substring")
    queue_id: str | None = Field(None, max_length=64)
    message_id: str | None = Field(None, max_length=1000)
    client_ip: str | None = Field(None, max_length=64)
    status: list[Literal[STATUSES]] = Field(default_factory=list, description="repeatable or comma-separated")  # type: ignore[valid-type]
    dsn: str | None = Field(None, description="5.1.1, or a prefix such as 5.1 or 5")
    relay: str | None = Field(None, max_length=1000, description="substring of relay=")
    host: str | None = Field(None, max_length=255)
    min_delay: float | None = Field(None, ge=0, description="seconds")
    sort: Literal["-time", "time", "-delay", "delay"] = "-time"
    limit: int | None = Field(None, ge=1, description="rows per page; capped by the max_limit setting")
    cursor: str | None = Field(None, max_length=2000, description="next_cursor of the previous page")

    _dsn = field_validator("dsn")(classmethod(lambda cls, v: check_dsn(v)))


class TraceParams(Params):
    host: str | None = Field(None, max_length=255)


StatName = Literal["summary", "volume", "rates", "sla", "domains", "slow-domains", "dsn", "rejects", "tls-coverage",
                   "dkim", "heatmap", "top-senders", "top-recipients"]
STAT_NAMES: tuple[str, ...] = StatName.__args__  # type: ignore[attr-defined]


class StatsParams(RangeParams):
    host: str | None = Field(None, max_length=255)
    domain: str | None = Field(None, max_length=255, description="recipient domain (recipient-based statistics)")
    interval: str | None = Field(None, description="bucket width of time series, e.g. 5m; default about 100 buckets")
    limit: int = Field(10, ge=1, le=1000, description="rows of top-N tables")
    threshold_seconds: float = Field(300, gt=0, description="sla: delivered within this many seconds")

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str | None) -> str | None:
        if v is not None:
            parse_interval(v)
        return v


ValueField = Literal["domain", "sender_domain", "host", "status", "dsn", "relay", "sender", "recipient"]
VALUE_FIELDS: tuple[str, ...] = ValueField.__args__  # type: ignore[attr-defined]


class ValuesParams(RangeParams):
    prefix: str | None = Field(None, max_length=255)
    limit: int = Field(100, ge=1, le=10_000)


class AnnotationsParams(RangeParams):
    host: str | None = Field(None, max_length=255)
    domain: str | None = Field(None, max_length=255)
    kind: Literal["bounce", "defer"] | None = Field(None, description="only this kind of spike")
    interval: str = Field("1h", description="bucket width")
    threshold: float = Field(0.2, gt=0, le=1, description="bounce or defer rate that makes an incident")
    min_records: int = Field(20, ge=1, description="final outcomes a bucket needs to count")

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        parse_interval(v)
        return v


# ---- responses ------------------------------------------------------------------------

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """The one success shape."""
    items: list[T]
    truncated: bool = Field(description="more rows exist than were returned")
    next_cursor: str | None = Field(description="pass as cursor= for the next page")
    meta: dict[str, Any] = Field(default_factory=dict, description="what was asked: resolved range, interval, ...")


class ErrorDetail(BaseModel):
    status: int
    message: str
    parameter: str | None = None


class ErrorBody(BaseModel):
    """The one error shape."""
    error: ErrorDetail


class FrameField(BaseModel):
    name: str
    type: Literal["time", "number", "string", "boolean", "other"]
    config: dict[str, Any] = Field(default_factory=dict)


class FrameSchema(BaseModel):
    name: str
    refId: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    fields: list[FrameField]


class FrameData(BaseModel):
    values: list[list[Any]]


class DataFrame(BaseModel):
    """Grafana DataFrameJSON: column-major values, times in epoch ms."""
    schema_: FrameSchema = Field(alias="schema")
    data: FrameData

    model_config = ConfigDict(populate_by_name=True)


class DeliveryRecord(BaseModel):
    time: str | None
    host: str | None
    queue_id: str | None
    message_id: str | None
    sender: str | None
    recipient: str | None
    orig_recipient: str | None
    subject: str | None
    status: str
    dsn: str | None
    relay: str | None
    delay_seconds: float | None
    attempts: int | None
    response: str | None
    client_ip: str | None
    tls: str | None
    trace_url: str | None = Field(description="API path of the message trace")


class Outcome(BaseModel):
    """What one delivery attempt (or a recipient's latest) ended with."""
    status: str | None
    dsn: str | None
    relay: str | None
    delay_seconds: float | None
    response: str | None
    tls: str | None


class Attempt(Outcome):
    time: str | None


class RecipientTrace(Outcome):
    queue_id: str | None
    recipient: str | None
    orig_recipient: str | None
    attempts: list[Attempt]


class MessageFields(BaseModel):
    time: str | None
    first_time: str | None
    last_time: str | None
    sender: str | None
    message_id: str | None
    subject: str | None
    client_host: str | None
    client_ip: str | None
    sasl_user: str | None
    size: int | None
    nrcpt: int | None
    origin: str | None
    dkim_domain: str | None
    dkim_result: str | None
    status: Literal["open", "removed", "expired"]


class TraceLink(BaseModel):
    kind: str | None
    parent_queue_id: str | None
    child_queue_id: str | None
    time: str | None


class TraceInstance(BaseModel):
    msg_id: int
    queue_id: str | None
    host: str | None
    role: Literal["this", "parent", "child", "linked"]
    first_time: str | None
    last_time: str | None
    sender: str | None
    subject: str | None


class TraceLine(BaseModel):
    time: str | None
    queue_id: str | None
    line: str


class Trace(BaseModel):
    msg_id: int
    host: str | None
    queue_id: str | None
    message: MessageFields
    recipients: list[RecipientTrace]
    links: list[TraceLink]
    instances: list[TraceInstance]
    lines: list[TraceLine]


class ValueItem(BaseModel):
    value: str
    count: int


class Annotation(BaseModel):
    time: str
    time_end: str
    title: str
    text: str
    tags: list[str]
    domain: str
    kind: Literal["bounce", "defer"]
    rate: float
    records: int


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    store: dict[str, Any]


# Stats items are rows whose columns depend on the statistic (docs/api.md lists them).
StatRow = dict[str, Any]
