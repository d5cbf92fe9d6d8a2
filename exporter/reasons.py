"""Why a delivery was deferred, bounced or rejected: a small fixed set of categories, from the
remote reply. Shared by the metrics (labels) and the store (a column the read side groups by)."""
from __future__ import annotations

import functools
import re

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

# Reason categories for deferrals, bounces and rejects, first match wins (lower-cased reply text).
REASONS: tuple[tuple[str, str], ...] = (
    ("mailbox_full", r"mailbox (is )?full|over ?quota|quota exceeded|insufficient (system )?storage|out of storage"),
    ("unknown_user", r"user unknown|unknown user|no such user|mailbox unavailable|does not exist|recipient address rejected: user|invalid recipient|undeliverable address|account .*(disabled|doesn.t exist)"),
    ("greylisting", r"greylist|graylist|try again later|temporarily deferred"),
    ("blocklisted", r"blocked|blocklist|blacklist|denylist|spamhaus|\brbl\b|dnsbl|reputation|listed"),
    ("rate_limit", r"rate limit|too many|throttl|exceeded.*(connections|messages)|slow down"),
    ("tls", r"tls|starttls|certificate|ssl"),
    ("dns", r"host not found|name service|domain not found|no mx|nxdomain|dns|hostname"),
    ("connection", r"connection (refused|timed out|reset)|lost connection|timed out|network is unreachable|no route to host|conversation with"),
    ("policy", r"policy|relay access denied|spam|rejected|denied|not permitted|spf|dmarc|dkim|content"),
)

# re.ASCII: \b as RE2 (DuckDB's regex engine, which the SQL form used) reads it
_COMPILED = tuple((name, re.compile(pattern, re.ASCII)) for name, pattern in REASONS)


@functools.lru_cache(maxsize=1 << 16)
def reason_of(reply: str | None) -> str:
    """The reason category of a reply (first pattern found in its lower-cased text)."""
    if reply is None:
        return "other"
    text = reply.lower()
    return next((name for name, pattern in _COMPILED if pattern.search(text)), "other")


def _reasons(replies: pa.Array | pa.ChunkedArray) -> pa.Array:
    """pi_reason over a vector: replies repeat, so each distinct one is classified once."""
    if isinstance(replies, pa.ChunkedArray):
        replies = replies.combine_chunks()
    enc = pc.dictionary_encode(replies)
    names = pa.array([reason_of(r) for r in enc.dictionary.to_pylist()], pa.string())
    return pc.fill_null(names.take(enc.indices), "other")  # a NULL reply: 'other'


def install(con: duckdb.DuckDBPyConnection) -> None:
    """pi_reason(reply): nine regular expressions per reply in SQL cost ~0.2 s per 1M lines
    in the records alone; most replies repeat, so a cached function is cheaper."""
    try:
        con.create_function("pi_reason", _reasons, ["VARCHAR"], "VARCHAR", type="arrow",
                            null_handling="special", side_effects=False)
    except (duckdb.CatalogException, duckdb.NotImplementedException):
        pass  # already registered on this connection


def reason_sql(col: str) -> str:
    return f"pi_reason({col})"
