"""The native parser against the SQL parser it replaces: every table, every column, every row.

The SQL in exporter/parser/body.py and header.py is the reference; the native pass must give
exactly the same ev1 and ev_<family> tables on the golden logs and on tricky lines.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from conftest import DATA
from exporter import parser
from exporter.config import ParserConfig
from exporter.parser import body
from exporter.parser.header import Clock
from exporter.sources.lines import split_lines

TABLES = ["ev1"] + [f"ev_{f}" for f in body.FAMILIES]
LOGS = sorted((DATA / "golden").glob("*.log")) + sorted((DATA / "samples").glob("*.log")) \
    + [DATA / "postfix-e2e-maillog.log", DATA / "samples" / "maillogger-maillog"]

H = "Mar  3 10:00:00 mx1 "
TRICKY = [
    # hostile subjects and replies imitating the fixed structure
    H + "postfix/cleanup[1]: ABC123: info: header Subject: x; from=<evil@x> to=<y> proto=SMTP helo=<h> from evil[1.2.3.4]; "
        "from=<a@b> to=<c@d> proto=ESMTP helo=<mx.example>",
    H + "postfix/cleanup[1]: ABC123: reject: header Subject: =?UTF-8?B?SGVsbG8=?= from x[9.9.9.9]: 550 no from h[1.1.1.1]; "
        "from=<a@b> to=<c@d> proto=ESMTP helo=<h>: 5.7.1 Spam: go away",
    H + "postfix/cleanup[1]: ABC123: hold: body status=bounced queued as DEF456 from h[1.1.1.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<>",
    H + "postfix/cleanup[1]: ABC123: warning: header Subject: no tail at all",
    H + "postfix/smtpd[2]: NOQUEUE: reject: RCPT from h[1.2.3.4]: 554 5.7.1 <c@d>: Relay access denied; from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
    H + "postfix/smtpd[2]: NOQUEUE: reject: RCPT from h[1.2.3.4]: 450 4.7.1 x; from=<a; from=<b> to=<c> proto=SMTP helo=<h>",
    H + "postfix/smtpd[2]: NOQUEUE: milter-reject: END-OF-MESSAGE from h[1.2.3.4]: 5.7.1 blocked; proto=ESMTP helo=<h>",
    H + "postfix/smtpd[2]: ABC123: reject: DATA from h[1.2.3.4]: 550 no",
    # deliveries: reply text holding fake fields, relays, content-filter children, odd delays
    H + "postfix/smtp[3]: ABC123: to=<a@b>, orig_to=<x@y>, relay=mx[1.2.3.4]:25, delay=1.5, delays=0.1/0/0.5/0.9, dsn=2.0.0, "
        "status=sent (250 2.0.0 Ok: queued as DEF4567)",
    H + "postfix/smtp[3]: ABC123: to=<a, status=bounced@b>, relay=none, delay=x, delays=1/2, dsn=5.1.1, status=bounced "
        "(host mx[1.2.3.4] said: 550 5.1.1 (status=sent) queued as ZZZ999)",
    H + "postfix/lmtp[3]: ABC123: to=<a@b>, relay=l[private/dovecot], delay=0.01, delays=0/0/0/0, dsn=4.0.0, status=deferred",
    H + "postfix/smtp[3]: ABC123: to=<a@b>, relay=mx[1.2.3.4]:25, delay=2, delays=0/0/1/1, dsn=2.0.0, status=sent (250 ok queued as 12345)",
    # delays in every shape a number can take: the native parser's shortcut for plain
    # decimals must round as TRY_CAST does, and hand the rest to the full conversion
    *(H + f"postfix/smtp[3]: ABC123: to=<a@b>, relay=none, delay={d}, delays=0/0/0/0, dsn=4.4.1, status=deferred"
      for d in ("5.", ".5", "0.1", "0.30000000000000004", "123456789012345", "1234567890123456.7", "00.0300",
                "1e3", "-2", "+2.5", "9007199254740993", "3.14159265358979", " 7", ".", "2..5")),
    # a needle whose first byte recurs before it, and one that ends the text
    H + "postfix/smtp[3]: ABC123: to=<a@b>, ,, , orig_to=<c@d>, relay=r, delay=1, dsn=2.0.0, status=sent",
    H + "postfix/smtp[3]: ABC123: to=<a@b>, relay=r, delay=1, dsn=2.0.0, status=",
    # queue manager, pickup, client, message-id, notify, hold
    H + "postfix/qmgr[4]: ABC123: from=<a@b>, size=123, nrcpt=2 (queue active)",
    H + "postfix/qmgr[4]: ABC123: from=<a@b>, status=expired, returned to sender",
    H + "postfix/qmgr[4]: ABC123: removed",
    H + "postfix/pickup[5]: ABC123: uid=0 from=<root>",
    H + "postfix/submission/smtpd[6]: ABC123: client=unknown[10.0.0.1], sasl_method=PLAIN, sasl_username=u",
    H + "postfix/cleanup[7]: ABC123: message-id=<x@y>",
    H + "postfix/cleanup[7]: ABC123: resent-message-id=no-brackets",
    H + "postfix/bounce[8]: ABC123: sender non-delivery notification: DEF456",
    H + "postfix/qmgr[4]: ABC123: placed on hold",
    H + "postfix/smtp[3]: ABC123: host mx[1.2.3.4] said: 451 try later (in reply to RCPT TO command)",
    H + "postfix/smtp[3]: ABC123: warning: something odd",
    H + "postfix/smtp[3]: ABC123: something nobody logs",
    # connections, TLS, SASL, postscreen, DKIM, other programs, noise
    H + "postfix/smtpd[9]: connect from unknown[192.0.2.1]",
    H + "postfix/smtpd[9]: disconnect from h[192.0.2.1] ehlo=1 quit=1 commands=2",
    H + "postfix/smtpd[9]: lost connection after DATA from h[192.0.2.1]",
    H + "postfix/smtp[3]: Trusted TLS connection established to mx[1.2.3.4]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
    H + "postfix/smtp[3]: connect to mx[1.2.3.4]:25: Connection refused",
    H + "postfix/smtpd[9]: warning: unknown[1.2.3.4]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
    H + "postfix/smtpd[9]: warning: hostname x does not resolve to address 1.2.3.4",
    H + "postfix/postscreen[10]: PASS NEW [192.0.2.1]:1234",
    H + "postfix/postscreen[10]: ALLOWLIST VETO [192.0.2.1]:1234",
    H + "opendkim[11]: ABC123: DKIM-Signature field added (s=mail, d=example.org)",
    H + "opendkim[11]: ABC123: DKIM verification successful",
    H + "opendkim[11]: ABC123: bad signature data",
    H + "dovecot: imap-login: Login: user=<u>",
    H + "postfix/anvil[12]: statistics: max connection rate 1/60s",
    H + "postfix/smtpd[9]: improper command pipelining after EHLO",
    H + "postfix/smtpd[9]: fatal: no",
    H + "postfix/postsuper[13]: something new",
    H + "postfix/weird[13]: something new",
    # headers: formats, long queue IDs, bad times, no pid, huge pid
    "2026-03-05T12:00:00.123456789+01:00 mx1 postfix/qmgr[4]: 4Bz1x36z5Hz9v8: removed",
    "2026-03-05T24:00:00Z mx1 postfix-out/smtp[4]: ABC123: removed",
    "2026-02-30T10:00:00+0530 mx1 postfix/qmgr[4]: ABC123: removed",
    "Feb 29 10:00:00 mx1 postfix/qmgr: ABC123: removed",
    "Mar 3 10:00:00 mx1 postfix/qmgr[99999999999]: ABC123: removed",
    "Foo  3 10:00:00 mx1 postfix/qmgr[4]: ABC123: removed",
    "Mar  3 25:00:00 mx1 postfix/qmgr[4]: ABC123: removed",
    "not a syslog line at all",
    "ABCDEF: looks like a queue ID without a header",
    H + "postfix/qmgr[4]: ABC123: to=<" + "x" * 70000 + ">, status=sent",  # over-long: kept raw
    H + "postfix/smtp[3]: ABC123: to=<\u00e4@b\u00fc>, relay=\u00fc[1.2.3.4], delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 \u00e9)",
]


def _tables(fn, data: bytes, zone: str, session_zone: str = "UTC") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": 1})
    con.execute(f"SET TimeZone = '{session_zone}'")
    parser.install_macros(con)
    lines = split_lines(data, 64 << 10)
    clock = Clock(anchor=datetime(2026, 6, 1, tzinfo=timezone.utc))
    con.execute("CREATE TEMP TABLE backwards AS SELECT ? AS n",
                [fn(con, lines, 100, clock, ParserConfig(year=2026, timezone=zone), "t")])
    return con


def _assert_same(data: bytes, zone: str = "UTC", session_zone: str = "UTC") -> None:
    ref, nat = _tables(parser.parse_sql, data, zone), _tables(parser.parse, data, zone, session_zone)
    nat.execute("SET TimeZone = 'UTC'")  # compare stored values the way the store reads them
    assert ref.execute("SELECT * FROM backwards").fetchall() == nat.execute("SELECT * FROM backwards").fetchall()
    for name in TABLES:
        cols = [r[0] for r in ref.execute(f"DESCRIBE {name}").fetchall()]
        want = ref.execute(f"SELECT * FROM {name} ORDER BY seq").fetchall()
        got = nat.execute(f"SELECT {', '.join(cols)} FROM {name} ORDER BY seq").fetchall()
        assert [r[1] for r in ref.execute(f"DESCRIBE {name}").fetchall()] == \
               [r[1] for r in nat.execute(f"DESCRIBE (SELECT {', '.join(cols)} FROM {name})").fetchall()], name
        for a, b in zip(want, got):
            assert a == b, f"{name}: {list(zip(cols, a, b))}"
        assert len(want) == len(got), name


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_native_matches_sql_on_logs(log: Path) -> None:
    _assert_same(log.read_bytes())


def test_native_matches_sql_on_tricky_lines() -> None:
    text = "\n".join(TRICKY).encode() + b"\n"
    # invalid UTF-8, binary junk and a CRLF line go through the splitter's careful path
    text += H.encode() + b"postfix/qmgr[4]: ABC123: from=<\xff\xfe@b>, size=1, nrcpt=1 (queue active)\n"
    text += H.encode() + b"postfix/qmgr[4]: ABC123: \x00\x01 junk\r\n"
    _assert_same(text)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York"])
def test_native_matches_sql_in_other_zones(zone: str) -> None:
    # the native parser may run on a cursor of its own (the read-ahead thread's), whose
    # session zone is the machine's, not the store's UTC: its results must not depend on it
    _assert_same((DATA / "golden" / "formats.log").read_bytes() + "\n".join(TRICKY[-12:]).encode(), zone,
                 session_zone="Asia/Tokyo")


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Etc/UTC"])
def test_native_matches_sql_across_a_clock_change_out_of_order(zone: str) -> None:
    # local times are converted a minute at a time, the minutes taken from runs of lines:
    # runs that repeat, go back, and straddle the spring-forward and fall-back hours
    times = ["Mar 29 01:58:10", "Mar 29 01:59:59", "Mar 29 03:00:00", "Mar 29 01:59:30", "Mar 29 03:01:00",
             "Mar 29 03:00:30", "Oct 25 01:59:00", "Oct 25 02:30:00", "Oct 25 02:30:00", "Oct 25 03:00:00",
             "Oct 25 02:59:59", "Mar 29 01:59:59", "Oct 25 02:00:01"]
    text = "".join(f"{t} mx1 postfix/qmgr[4]: ABC{i}: removed\n" for i, t in enumerate(times))
    _assert_same(text.encode(), zone, session_zone="Asia/Tokyo")


def test_a_batch_parsed_in_halves_is_the_batch_parsed_whole() -> None:
    # the first batch of a file is parsed on two threads, a half each (nothing else runs yet);
    # a year rolls over (Dec -> Jan) in the second half, and times go backwards across them
    rollover = [f"Dec 31 23:5{i}:00 mx1 postfix/qmgr[4]: ABC{i}: removed" for i in range(6)] \
        + [f"Jan  1 00:0{i}:00 mx1 postfix/qmgr[4]: DEF{i}: removed" for i in range(6)]
    data = (DATA / "golden" / "formats.log").read_bytes() + "\n".join(TRICKY + rollover).encode() + b"\n"
    lines = split_lines(data, 64 << 10)
    con = duckdb.connect()

    def parsed(halves: bool) -> parser.Parsed:
        clock = Clock(anchor=datetime(2026, 12, 31, tzinfo=timezone.utc))
        return parser.prepare(lines, clock, ParserConfig(timezone="Europe/Berlin"), con, halves=halves)

    whole, halved = parsed(False), parsed(True)
    assert halved.ev1.column("seq").num_chunks == 2  # parsed apart, and put together in line order
    # (each half has a dictionary of its own for host, daemon ...: the values are compared)
    assert halved.ev1.to_pylist() == whole.ev1.to_pylist() and len(whole.ev1) == len(lines)
    assert halved.families.keys() == whole.families.keys()
    for family, table in whole.families.items():
        assert halved.families[family].to_pylist() == table.to_pylist(), family
    assert (halved.backwards, halved.clock) == (whole.backwards, whole.clock) and whole.backwards > 0
    assert {t.year for t in whole.ev1.column("ts").to_pylist() if t} >= {2026, 2027}
