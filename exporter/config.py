"""Settings of each ingest stage: one pydantic model per stage, defaults and validation beside it."""
from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Stage(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReaderConfig(_Stage):
    batch_bytes: int = Field(24 << 20, ge=1 << 16, description="bytes read and parsed per batch (two are in memory at once, parsed, beside the store)")
    max_line_bytes: int = Field(64 << 10, ge=1024, description="longer lines are kept raw, not parsed")
    progress: bool | None = Field(None, description="progress bar on stderr; None = only on a terminal")


class ParserConfig(_Stage):
    year: int | None = Field(None, ge=1970, le=9999,
                             description="year of the first year-less (BSD syslog) line; default: from the file's mtime")
    timezone: str = Field("localtime", description="zone of year-less timestamps (IANA name, 'UTC' or 'localtime')")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in ("localtime", "UTC"):
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class CorrelatorConfig(_Stage):
    max_open_messages: int = Field(1_000_000, ge=100,
                                   description="open queue IDs kept; the least recently seen are evicted beyond it")
    expire_after_seconds: float = Field(6 * 86400, gt=0,
                                        description="an open message unseen this long is closed (Postfix's maximal_queue_lifetime is 5 days)")
    link_window_seconds: float = Field(3600, gt=0,
                                       description="a 'queued as' child must have started this long before the parent's delivery line")


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir("postfix-insights")) / "postfix-insights.duckdb"


class StoreConfig(_Stage):
    path: Path = Field(default_factory=default_db_path)
    threads: int = Field(2, ge=1, description="DuckDB threads for queries")
    ingest_threads: int = Field(1, ge=1, description=(
        "DuckDB threads while a log is read in: the read-ahead and the writer threads keep the other "
        "core busy, and DuckDB's own parallel work beside them costs more than it saves (BENCHMARKS.md)"))
    # DuckDB frees its memory back to the system, and trims the whole process's malloc heap
    # (ours too) with it, whenever the memory it has freed since plus the memory it uses pass
    # its limit. With a share under ~1 GB a 5M-line ingest did so at almost every batch (33
    # times), and every page it gave back faulted in again: ~10% slower (BENCHMARKS.md).
    memory_limit: str = Field("1.25GB", description=(
        "the store's memory: DuckDB's memory_limit plus the batches in flight (~250 MB), which are counted in it"))
    checkpoint_mb: int = Field(128, ge=1, description="WAL size that triggers a checkpoint (DuckDB checkpoint_threshold)")
    row_group_rows: int = Field(16384, ge=2048, description=(
        "rows per DuckDB row group: a batch's rows of a table that fill whole row groups are "
        "written compressed at once instead of through the WAL (DuckDB's default is 122880)"))
    retention_days: float | None = Field(None, gt=0, description="drop data older than this")
