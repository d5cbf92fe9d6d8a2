"""The few record types shared by every stage (a leaf module: imports nothing of ours).

The delivery record is the public contract of `postfix-insights search --format json`,
of the generator's ground truth and of the data-source API's message items.
"""
from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum

# Keys of one delivery record, in output order. Unknown values are None (JSON null).
DELIVERY_RECORD_KEYS: tuple[str, ...] = (
    "time",            # ISO 8601 UTC of the latest status, see iso_utc()
    "host",            # syslog host name of the Postfix server
    "queue_id",        # None for SMTP-time rejects without a queue ID
    "message_id",      # without angle brackets; "" when Postfix logged message-id=<>
    "sender",          # envelope sender; "" for the null sender <>
    "recipient",       # final recipient (to=); None while no delivery attempt was logged
    "orig_recipient",  # orig_to= when Postfix logged one
    "subject",         # from a header_checks `header Subject:` action, MIME-decoded
    "status",          # see Status
    "dsn",             # enhanced status code of the latest attempt, e.g. "5.1.1"
    "relay",           # relay= of the latest attempt as logged, e.g. "mx.example.com[192.0.2.1]:25"
    "delay_seconds",   # delay= of the latest attempt (float)
    "attempts",        # number of delivery attempts logged for this recipient (0 for rejects)
    "response",        # text in parentheses after status=, or the reject reply "550 5.7.1 ..."
    "client_ip",       # the SMTP client that handed the message to us
    "tls",             # outbound TLS protocol of the latest attempt ("TLSv1.3"), else None
)


class Status(StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"      # latest attempt deferred and the message is still queued
    BOUNCED = "bounced"
    EXPIRED = "expired"        # qmgr returned the message to the sender after the queue lifetime
    REJECTED = "rejected"      # SMTP-time or cleanup reject
    PENDING = "pending"        # queued, no delivery attempt seen yet
    HELD = "held"              # placed on hold (access map or header_checks HOLD)
    DISCARDED = "discarded"    # header/body check or access-map DISCARD


def iso_utc(ts: datetime) -> str:
    """ISO 8601 in UTC with a Z suffix; microseconds only when non-zero."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
