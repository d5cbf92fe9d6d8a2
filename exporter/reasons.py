"""Why a delivery was deferred, bounced or rejected: a small fixed set of categories, from the
remote reply. Shared by the metrics (labels) and the store (a column the read side groups by)."""
from __future__ import annotations

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


def reason_sql(col: str) -> str:
    cases = " ".join(f"WHEN regexp_matches(lower({col}), '{pattern.replace(chr(39), chr(39) * 2)}') THEN '{name}'"
                     for name, pattern in REASONS)
    return f"CASE WHEN {col} IS NULL THEN 'other' {cases} ELSE 'other' END"
