"""Reason categories of replies (exporter/reasons.py), as SQL sees them through pi_reason."""
from __future__ import annotations

import duckdb
import pytest

from exporter import reasons

CASES = [
    ("552 5.2.2 Mailbox is FULL", "mailbox_full"),
    ("550 5.1.1 <a@b.example>: Recipient address rejected: User unknown in virtual mailbox table", "unknown_user"),
    ("450 4.2.0 <a@b.example>: Recipient address rejected: Greylisted, see http://postgrey.example", "greylisting"),
    ("554 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org", "blocklisted"),
    ("550 listed at an RBL", "blocklisted"),
    ("550 xrbl here", "other"),            # \b: 'rbl' inside a word is not the RBL
    ("550 érbl here", "blocklisted"),      # as RE2 reads \b: é is not a word character
    ("421 4.7.0 Too many connections, slow down", "rate_limit"),
    ("530 5.7.0 Must issue a STARTTLS command first", "tls"),
    ("Host or domain name not found. Name service error for name=b.example type=MX", "dns"),
    ("connect to mx.b.example[192.0.2.9]:25: Connection refused", "connection"),
    ("554 5.7.1 Relay access denied", "policy"),
    ("250 2.0.0 Ok: queued as 4F1A2B3C4D", "other"),
    ("", "other"),
    (None, "other"),
]


@pytest.mark.parametrize(("reply", "reason"), CASES)
def test_a_reply_gets_its_category(reply: str | None, reason: str) -> None:
    assert reasons.reason_of(reply) == reason


def test_the_sql_function_classifies_a_column_with_repeats_and_nulls() -> None:
    con = duckdb.connect()
    reasons.install(con)
    reasons.install(con)  # a second install on the same connection is harmless
    rows = [reply for reply, _ in CASES] * 3
    con.execute("CREATE TABLE r (i INTEGER, reply VARCHAR)")
    con.executemany("INSERT INTO r VALUES (?, ?)", list(enumerate(rows)))
    got = con.execute(f"SELECT {reasons.reason_sql('reply')} FROM r ORDER BY i").fetchall()
    assert [g for (g,) in got] == [reason for _, reason in CASES] * 3
