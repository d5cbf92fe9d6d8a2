"""Settings of `postfix-insights serve`: TOML file, then POSTFIX_INSIGHTS_* variables, then flags.

Each stage keeps its own model (exporter/config.py and the models below); this module only
composes them and reports a bad key or value by its dotted name.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exporter.config import CorrelatorConfig, ParserConfig, ReaderConfig, StoreConfig

ENV_PREFIX = "POSTFIX_INSIGHTS_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


class HttpConfig(_Section):
    listen: str = Field("127.0.0.1:8080", description="HOST:PORT of /metrics, /healthz, the Loki push API")
    max_body_bytes: int = Field(16 << 20, ge=1024, description="largest push request accepted")

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, v: str) -> str:
        return _host_port(v)


class FilesConfig(_Section):
    logs: list[str] = Field(default_factory=list, description="globs of log files to follow, e.g. /var/log/mail.log*")
    poll_interval_seconds: float = Field(0.5, gt=0, le=60)


class JournaldConfig(_Section):
    enabled: bool = False
    unit: str = Field("postfix@-.service", description="journalctl -u UNIT; empty for no unit filter")
    matches: list[str] = Field(default_factory=list, description="more journalctl match arguments (FIELD=VALUE)")
    directory: str | None = Field(None, description="read journal files from this directory (journalctl --directory)")


class SyslogConfig(_Section):
    udp_listen: str | None = Field(None, description="HOST:PORT for RFC 3164/5424 over UDP")
    tcp_listen: str | None = Field(None, description="HOST:PORT for syslog over TCP (octet-counted or newline framing)")

    @field_validator("udp_listen", "tcp_listen")
    @classmethod
    def _check(cls, v: str | None) -> str | None:
        return None if v is None else _host_port(v)


class IntakeConfig(_Section):
    max_queued_lines: int = Field(200_000, ge=1000, description="pushed lines waiting for ingest; beyond it 429")
    batch_interval_seconds: float = Field(0.5, gt=0, le=60, description="how long pushed lines wait to be batched")
    host_label: str = Field("host", description="Loki label naming the mail host")


class MetricsConfig(_Section):
    top_domains: int = Field(50, ge=0, le=10_000, description="recipient domains with their own label; the rest are 'other'")
    kumina_compat: bool = Field(False, description="also serve kumina postfix_exporter metric names")
    postqueue_command: list[str] = Field(default_factory=lambda: ["postqueue", "-j"])
    postqueue_interval_seconds: float = Field(60, gt=0)


class ApiConfig(_Section):
    """The read side: data-source API and web pages."""
    tokens: list[str] = Field(default_factory=list,
                              description="bearer tokens; when set, /api/v1 and the pages need one")
    protect_metrics: bool = Field(False, description="with tokens set, /metrics and /healthz need one too")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call /api/v1 from a browser")
    default_limit: int = Field(100, ge=1, le=100_000, description="rows per page when no limit= is given")
    max_limit: int = Field(5000, ge=1, le=100_000, description="most rows one page returns")
    query_timeout_seconds: float = Field(10, gt=0, le=600, description="a query running longer is interrupted (503)")
    max_concurrent_queries: int = Field(4, ge=1, le=64, description="queries beyond it wait their turn")

    @field_validator("tokens")
    @classmethod
    def _strong(cls, v: list[str]) -> list[str]:
        for token in v:
            if len(token) < 16:
                raise ValueError("each token needs at least 16 characters")
        return v


class ServeConfig(_Section):
    http: HttpConfig = Field(default_factory=HttpConfig)
    files: FilesConfig = Field(default_factory=FilesConfig)
    journald: JournaldConfig = Field(default_factory=JournaldConfig)
    syslog: SyslogConfig = Field(default_factory=SyslogConfig)
    intake: IntakeConfig = Field(default_factory=IntakeConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    reader: ReaderConfig = Field(default_factory=lambda: ReaderConfig(batch_bytes=4 << 20))
    parser: ParserConfig = Field(default_factory=ParserConfig)
    correlator: CorrelatorConfig = Field(default_factory=CorrelatorConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)


class SettingsError(ValueError):
    """A bad setting: the message names the key, the value and what is wrong."""


def _set(tree: dict[str, Any], dotted: list[str], value: Any) -> None:
    for key in dotted[:-1]:
        tree = tree.setdefault(key, {})
    tree[dotted[-1]] = value


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """POSTFIX_INSIGHTS_HTTP__LISTEN=... -> {"http": {"listen": ...}}; lists are comma-separated."""
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "DB":
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        parsed: Any = value
        if path[-1] in ("logs", "matches", "postqueue_command", "tokens", "cors_origins"):
            parsed = [v for v in value.split(",") if v]
        _set(tree, path, parsed)
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load(config_file: Path | None = None, flags: dict[str, Any] | None = None,
         environ: dict[str, str] | None = None) -> ServeConfig:
    tree: dict[str, Any] = {}
    if config_file is not None:
        try:
            tree = tomllib.loads(config_file.read_text())
        except OSError as exc:
            raise SettingsError(f"{config_file}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{config_file}: not valid TOML: {exc}") from exc
    env = dict(os.environ if environ is None else environ)
    tree = _merge(tree, _env_overrides(env))
    if env.get(ENV_PREFIX + "DB"):
        _set(tree, ["store", "path"], env[ENV_PREFIX + "DB"])
    for dotted, value in (flags or {}).items():
        if value is not None and value != []:
            _set(tree, dotted.split("."), value)
    try:
        return ServeConfig.model_validate(tree)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err["loc"])
            shown = repr(err.get("input"))
            got = f" (got {shown})" if "input" in err and not isinstance(err["input"], dict) and shown not in err["msg"] else ""
            problems.append(f"{where}: {err['msg']}{got}")
        raise SettingsError("; ".join(problems)) from exc
