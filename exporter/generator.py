"""Deterministic synthetic Postfix 3.7 log corpus, with the delivery records it must yield.

Used by the tests (ground truth == `search --format json`), by the demo and by the
benchmarks, so it is seeded, exact about what it claims and fast (no per-line datetime).

How it works: traffic units (an inbound message, a submission, a reject session, noise...)
arrive as a Poisson process.  When a unit arrives, every line it will ever cause (retries,
bounce notices and content-filter children included) is scheduled at once into per-second
buckets.  Nothing that arrives later can log before its own arrival, so a bucket is final
once the arrival clock has passed it: it is then sorted by time (stably, so lines of one
message logged in the same microsecond keep their order) and written with one timestamp
string for the whole second.  The ground truth of a message is known when it is scheduled.

Conventions a parser must agree with are listed in GROUND_TRUTH_RULES below.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from operator import itemgetter
from random import Random
from typing import Any, BinaryIO, Literal

from exporter.records import DELIVERY_RECORD_KEYS, iso_utc

Format = Literal["bsd", "rfc3339", "maillog"]
FORMATS: tuple[Format, ...] = ("bsd", "rfc3339", "maillog")

GROUND_TRUTH_RULES = """\
- one record per recipient (to=) of every queued message, per NOQUEUE reject line, and one with
  recipient null per message that never got past qmgr's first `from=` line (pending); a
  message is one queue-ID instance, from its first line to its `removed` line (IDs are reused
  only after that, and at least a second later);
- time = the latest status line of that recipient: its latest delivery line, qmgr's
  `status=expired` line, the reject line, or (pending) qmgr's `from=... (queue active)` line;
  whole seconds for bsd/maillog, microseconds for rfc3339;
- sender = qmgr's from= (pickup's own `from=<root>` is unqualified, qmgr's is qualified);
  message_id = cleanup's message-id without <> ("" for message-id=<>);
- subject = the `header Subject:` text MIME-decoded (RFC 2047; Python's
  str(make_header(decode_header(s))) gives it), None when no subject line was logged (content-
  filter children: the reinjection listener skips header checks);
- relay / delay / dsn / response / tls are those of the latest attempt, relay as written
  (`none`, `local`, `host[private/dovecot-lmtp]` without a port); attempts counts the
  recipient's delivery lines; dsn of a reject is the enhanced code right after the SMTP code;
- expired keeps the latest deferral's dsn, relay, delay, response, tls and attempts;
- tls: every delivery session has its own process (pids wrap around and are reused later);
  its lines are optional `connect to ...: Connection refused|timed out` lines, the optional
  `... TLS connection established to ...: TLSvX ...` line, then one delivery line per recipient.
  So a delivery line has TLS when the previous line of the same host+tag+pid is that TLS line,
  or is a delivery line of the same queue ID that had TLS;
- a content-filter hop is two messages: the parent (relay 127.0.0.1[127.0.0.1]:10024, status
  sent) and the child (client_ip 127.0.0.1, same message-id, no subject line);
- truth lines are sorted by (host, queue_id or "", recipient or "", time, JSON text).
"""

US = 1_000_000                 # all clock values are integer microseconds since the epoch
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NEVER = 1 << 62                # "busy until" of a queue ID whose message is never removed
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PID_MIN, PID_MAX = 1000, 4_194_304  # Linux pid_max; long-running daemons get pids below PID_MIN
QID_REUSE_RATE = 0.004          # share of new queue IDs deliberately taken from removed ones
WRITE_CHUNK = 1 << 20
ANVIL_PERIOD = 600 * US         # anvil_status_update_time
LOCAL_DOMAINS = ("example.com", "example.org", "example.net")
NOTICE_SUBJECT = "Undelivered Mail Returned to Sender"


@dataclass
class GeneratorStats:
    lines: int = 0
    messages: int = 0          # queue IDs assigned (bounce notices and filter children included)
    records: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    last_us: int = 0           # time of the last line (microseconds since the epoch)


# ---------------------------------------------------------------------------------------------
# static tables

_FIRST_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
                "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
                "j.smith", "m.mueller", "a.nguyen", "k.tanaka", "s.oconnor", "l.garcia", "p.kowalski")
_ALIASES = ("info", "sales", "support", "postmaster", "abuse", "hr", "billing", "team")
_EXT_WORDS = ("partner", "acme", "globex", "initech", "umbrella", "hooli", "vandelay", "wayne",
              "stark", "wonka", "tyrell", "cyberdyne", "soylent", "oceanic", "monarch", "nakatomi",
              "gringotts", "duff", "krusty", "pied-piper")
_EXT_USERS = ("bob", "alice.smith", "john.doe", "billing", "info", "noreply", "newsletter", "sales",
              "m.rossi", "j.schmidt", "support", "ceo", "orders", "bounces+srs=4b1c=example.org",
              "prvs=0123abcd45=news", "team-lead", "h.yilmaz")
_TLS_OUT = ("TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
            "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519"
            " server-signature RSA-PSS (2048 bits) server-digest SHA256",
            "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits)",
            "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)")
_TLS_IN = ("TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
           "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519"
           " server-signature ECDSA (P-256) server-digest SHA256",
           "TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)")
_TLS_MODES = ("Trusted", "Trusted", "Verified", "Untrusted", "Untrusted")
_SUBJECTS = ("Meeting notes for Thursday", "Invoice 2026-1187", "Your order has shipped",
             "Re: quarterly report", "Weekly newsletter #42", "Password reset request",
             "Fwd: contract draft v3", "Lunch?", "Q3  numbers  attached", "Is 2+2=4? Ask_me",
             "Grüße aus München", "Résumé – Jean-Éric Dupont", "Ürün siparişiniz hazır",
             "日本語の件名テスト", "Привет, как дела?", "🎉 Big sale today only", "Ελληνικά θέματα",
             # attacker-controlled text that imitates log syntax
             "status=bounced", "Your mail was queued as ABC123", "Re: from=<x> to=<y>",
             "<script>alert(1)</script>", "dsn=5.1.1, status=sent (250 OK)",
             "Invoice from billing[10.0.0.1]; from=<a@b.example> to=<c@d.example>")
_CRON_SUBJECTS = ("Cron <root@{h}> test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily )",
                  "Cron <root@{h}> /usr/local/bin/backup.sh", "Logwatch for {h} (Linux)")
_APP_SUBJECTS = ("Your password reset link", "Order confirmation #{n}", "Welcome to our service")
_SENT_REPLIES = ("250 2.0.0 Ok: queued as {q}", "250 2.0.0 OK  {n} {q}.{m} - gsmtp",
                 "250 OK id=1t{q}-000{m}-Ab", "250 2.6.0 <{q}@mail.example> [InternalId={n},"
                 " Hostname=AM0PR01MB{m}.example] Queued mail for delivery")
_NOSUCHUSER = ("host {mx}[{ip}] said: 550 5.1.1 <{r}>: Recipient address rejected: User unknown"
               " in virtual mailbox table (in reply to RCPT TO command)",
               "host {mx}[{ip}] said: 550-5.1.1 The email account that you tried to reach does not"
               " exist. Please try 550-5.1.1 double-checking the recipient's email address for typos"
               " or 550-5.1.1 unnecessary spaces. 550 5.1.1  https://support.example/?p=NoSuchUser"
               " a1b2c3 - gsmtp (in reply to RCPT TO command)",
               "host {mx}[{ip}] said: 552 5.2.2 <{r}>: Mailbox full (in reply to end of DATA command)")
_GREYLIST = (("4.2.0", "host {mx}[{ip}] said: 450 4.2.0 <{r}>: Recipient address rejected: Greylisted,"
                       " see http://postgrey.example/help/{d}.html (in reply to RCPT TO command)"),
             ("4.7.1", "host {mx}[{ip}] said: 451 4.7.1 Please try again later (in reply to RCPT TO command)"))
# (weight, fate): the outcome of each delivery round of one recipient group
_REMOTE_FATES = ((85, ("sent",)), (3, ("failover",)), (4, ("greylist", "sent")), (2, ("refused", "sent")),
                 (1, ("timeout", "refused", "sent")), (1, ("lost", "sent")), (2, "expire"))
_DEFERRAL_STEPS = ("refused", "timeout", "greylist", "lost")
_HARD_BOUNCE_RATE = 0.03        # per remote recipient in a round that otherwise succeeds


def _weighted(weighted: Sequence[tuple[int, Any]]) -> list[Any]:
    """A list in which each value appears `weight` times: choice() on it is a weighted draw."""
    return [value for weight, value in weighted for _ in range(weight)]


def _q_encode(text: str, charset: str) -> str:
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/"
    out = []
    for byte in text.encode(charset):
        if byte == 0x20:
            out.append("_")
        elif byte in safe:
            out.append(chr(byte))
        else:
            out.append(f"={byte:02X}")
    return "".join(out)


def _b_word(text: str) -> str:
    return f"=?UTF-8?B?{base64.b64encode(text.encode()).decode()}?="


def _subject_table() -> list[tuple[str, str]]:
    """(text as Postfix logs it, decoded subject): raw ASCII/UTF-8 and RFC 2047 forms."""
    table = []
    for text in _SUBJECTS:
        half = len(text) // 2
        table += [(text, text), (text, text), (_b_word(text), text),
                  (f"=?utf-8?Q?{_q_encode(text, 'utf-8')}?=", text),
                  (f"Re: {_b_word(text)}", f"Re: {text}"),
                  # adjacent encoded words: the space between them is not part of the text
                  (f"{_b_word(text[:half])} {_b_word(text[half:])}", text)]
        try:
            table.append((f"=?ISO-8859-1?Q?{_q_encode(text, 'latin-1')}?=", text))
        except UnicodeEncodeError:
            pass
    return table


def _delay_table() -> list[tuple[str, float]]:
    """Postfix's delay formatting for 0..9.99 s in centiseconds: two significant digits."""
    table = []
    for cs in range(1000):
        text = "0" if cs == 0 else f"{cs / 100:.2g}"
        table.append((text, float(text)))
    return table


_DELAYS = _delay_table()


def _fmt_delay(cs: int) -> str:
    return _DELAYS[cs][0] if cs < 1000 else str(cs // 100)


# ---------------------------------------------------------------------------------------------
# simulation state


@dataclass(slots=True)
class _Client:
    name: str
    ip: str
    helo: str
    at: str = ""                # name[ip], as smtpd logs the client

    def __post_init__(self) -> None:
        self.at = f"{self.name}[{self.ip}]"


@dataclass(slots=True)
class _Route:
    """Where mail for one domain goes: kind is smtp, filter, lmtp, virtual, pipe or local."""
    kind: str
    relay: str = ""             # relay= of a successful delivery (local kinds)
    prog: str = ""              # syslog tag of the delivery agent (local kinds)
    reply: str = ""             # status=sent reply (local kinds)
    domain: str = ""            # remote kinds:
    mx: str = ""
    ip: str = ""
    mx2: str = ""
    ip2: str = ""
    tls_mode: str | None = None
    tls_text: str = ""
    reply_style: str = ""


@dataclass(slots=True)
class _Rcpt:
    addr: str
    orig: str | None
    status: str = "pending"
    attempts: int = 0
    t: int = 0
    dsn: str | None = None
    relay: str | None = None
    delay: float | None = None
    response: str | None = None
    tls: str | None = None


@dataclass(slots=True)
class _Msg:
    host: _Host
    qid: str
    sender: str
    message_id: str | None
    subject: str | None
    client_ip: str | None
    arrival: int
    size: int
    rcpts: list[_Rcpt] = field(default_factory=list)


@dataclass(slots=True)
class _Group:
    """Recipients delivered together (same route), and what happens in each delivery round."""
    route: _Route
    prog: str
    fate: tuple[str, ...]
    rcpts: list[_Rcpt] = field(default_factory=list)


class _Host:
    """One Postfix server: its pid space, daemons, queue IDs and mailbox routes."""

    def __init__(self, name: str, index: int, rng: Random) -> None:
        self.name = name
        self.fqdn = f"{name}.example.com"
        self.ip = f"192.0.2.{10 + index}"
        self.rnd = rng.random
        self.next_pid = PID_MIN + rng.randrange(PID_MAX - PID_MIN)
        daemon = iter(rng.sample(range(200, PID_MIN), 20))
        self.qmgr = self._daemon("postfix/qmgr", next(daemon))
        self.pickup = self._daemon("postfix/pickup", next(daemon))
        self.anvil = self._daemon("postfix/anvil", next(daemon))
        self.postscreen = self._daemon("postfix/postscreen", next(daemon))
        self.dnsblog = self._daemon("postfix/dnsblog", next(daemon))
        self.opendkim = self._daemon("opendkim", next(daemon))
        self.cleanups = [self._daemon("postfix/cleanup", next(daemon)) for _ in range(3)]
        self.bounces = [self._daemon("postfix/bounce", next(daemon)) for _ in range(2)]
        self.amavis_pids = [next(daemon) for _ in range(3)]
        self.dovecot = f"{name} dovecot: "
        self.busy: dict[str, int] = {}            # queue ID -> time of its latest `removed`
        self.freed: deque[str] = deque(maxlen=64)  # recently removed IDs, candidates for reuse
        self.routes = {
            "example.com": _Route("lmtp", f"{self.fqdn}[private/dovecot-lmtp]", "postfix/lmtp"),
            "example.org": _Route("virtual", "virtual", "postfix/virtual", "delivered to maildir"),
            "example.net": _Route("pipe", "dovecot", "postfix/pipe", "delivered via dovecot service"),
            self.fqdn: _Route("local", "local", "postfix/local", "delivered to mailbox"),
        }

    def _daemon(self, prog: str, pid: int) -> str:
        return f"{self.name} {prog}[{pid}]: "

    def tag(self, prog: str) -> str:
        """Line prefix of a new process: one process (pid) per session, pids wrap around."""
        pid = self.next_pid + 1 + int(self.rnd() * 6)
        if pid >= PID_MAX:
            pid -= PID_MAX - PID_MIN
        self.next_pid = pid
        return f"{self.name} {prog}[{pid}]: "

    def cleanup(self) -> str:
        return self.cleanups[int(self.rnd() * 3)]

    def bounce(self) -> str:
        return self.bounces[int(self.rnd() * 2)]

    def new_qid(self, t: int) -> str:
        """A short queue ID (5 hex digits of microseconds + inode number) free at time t."""
        if self.rnd() < QID_REUSE_RATE:
            for qid in self.freed:
                if self.busy.get(qid, -1) < t - US:
                    self.freed.remove(qid)
                    self.busy[qid] = NEVER
                    return qid
        while True:
            qid = f"{t % US:05X}{0x10000 + int(self.rnd() * 0x3F0000):X}"
            if self.busy.get(qid, -1) < t - US:
                self.busy[qid] = NEVER
                return qid

    def free_qid(self, qid: str, t: int) -> None:
        self.busy[qid] = t
        self.freed.append(qid)

    def prune(self, now: int) -> None:
        """Forget IDs removed over a second before now: later allocations happen at or after now."""
        self.busy = {qid: until for qid, until in self.busy.items() if until >= now - US}


class _Sim:
    def __init__(self, seed: int, start_us: int, hosts: Sequence[str], fmt: Format,
                 want_truth: bool, rate: float) -> None:
        rng = Random(seed)
        self.rnd = rng.random
        self.bits = rng.getrandbits
        self.expo = rng.expovariate
        self.rate = rate
        self.start_us = start_us
        self.fmt = fmt
        self.want_truth = want_truth
        self.hosts = [_Host(name, i, rng) for i, name in enumerate(hosts)]
        self._build_pools(rng)
        self.units: list[Callable[[_Host, int], None]] = _weighted((
            (40, self._inbound), (8, self._filtered), (20, self._submission), (2, self._cron),
            (3, self._webapp), (10, self._reject), (7, self._postscreen_block), (4, self._sasl_failure),
            (3, self._unresolved), (3, self._tls_noise)))
        # output state
        self.buckets: defaultdict[int, list[tuple[int, str]]] = defaultdict(list)
        self.next_sec = start_us // US
        self.scheduled = 0
        self.parts: list[bytes] = []
        self.parts_len = 0
        self.truth: list[tuple[Any, ...]] = []
        self.stats = GeneratorStats()
        self.out: BinaryIO | None = None

    def _build_pools(self, rng: Random) -> None:
        self.mailboxes = [f"{n}@{d}" for d in LOCAL_DOMAINS for n in _FIRST_NAMES]
        self.aliases = {f"{a}@{d}": rng.sample([f"{n}@{d}" for n in _FIRST_NAMES], rng.choice((1, 1, 2, 3)))
                        for d in LOCAL_DOMAINS for a in _ALIASES}
        self.alias_list = list(self.aliases)
        self.remote: dict[str, _Route] = {}
        for i in range(120):
            domain = f"{_EXT_WORDS[i % len(_EXT_WORDS)]}{i // len(_EXT_WORDS) or ''}.example"
            v6 = rng.random() < 0.1
            ip = f"2001:db8:{i:x}::25" if v6 else f"{('198.51.100', '203.0.113')[i % 2]}.{1 + i}"
            ip2 = f"2001:db8:{i:x}::26" if v6 else f"198.18.{i}.{rng.randrange(2, 250)}"
            tls = rng.random() < 0.85
            self.remote[domain] = _Route(
                "smtp", domain=domain, mx=f"mx1.{domain}", ip=ip, mx2=f"mx2.{domain}", ip2=ip2,
                tls_mode=rng.choice(_TLS_MODES) if tls else None, tls_text=rng.choice(_TLS_OUT),
                reply_style=rng.choice(_SENT_REPLIES))
        self.remote_list = list(self.remote.values())
        self.clients = [self._client(rng, i) for i in range(300)]
        self.subm_clients = [_Client(rng.choice(("unknown", f"dyn-{i}.isp.example")), f"100.64.{i}.{i + 7}",
                                     rng.choice((f"[192.168.1.{i}]", "laptop.local", f"DESKTOP-{i:04X}")))
                             for i in range(1, 60)]
        self.localhost = _Client("localhost", "127.0.0.1", "localhost")
        self.subjects = _subject_table()
        self.lmtp_ids = [base64.b64encode(rng.randbytes(16)).decode()[:22] for _ in range(64)]
        self.remote_fates = _weighted(_REMOTE_FATES)
        self.local_rcpt_counts = _weighted(((70, 1), (15, 2), (8, 3), (4, 4), (3, 5)))

    def _client(self, rng: Random, i: int) -> _Client:
        if rng.random() < 0.08:
            ip = f"2001:db8:c{i:x}::{rng.randrange(1, 0xffff):x}"
        else:
            ip = f"{rng.choice(('203.0.113', '198.51.100', '192.0.2'))}.{rng.randrange(1, 255)}"
        if rng.random() < 0.2:
            return _Client("unknown", ip, rng.choice((f"[{ip}]", "User", "localhost", "ylmf-pc")))
        name = f"mail{i}.{_EXT_WORDS[i % len(_EXT_WORDS)]}{i % 7 or ''}.example"
        return _Client(name, ip, name)

    # ---- output --------------------------------------------------------------------------------

    def emit(self, t: int, line: str) -> None:
        self.buckets[t // US].append((t, line))
        self.scheduled += 1

    def _stamp(self, sec: int) -> str:
        """Timestamp text of one whole second in the chosen format."""
        tm = time.gmtime(sec)
        if self.fmt == "rfc3339":
            return (f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}"
                    f"T{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}")
        day = f"{tm.tm_mday:02d}" if self.fmt == "maillog" else f"{tm.tm_mday:2d}"
        return f"{MONTHS[tm.tm_mon - 1]} {day} {tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"

    def _flush_second(self, sec: int) -> None:
        bucket = self.buckets.pop(sec, None)
        if not bucket:
            return
        bucket.sort(key=itemgetter(0))
        stamp = self._stamp(sec)
        if self.fmt == "rfc3339":
            text = "".join([f"{stamp}.{t % US:06d}+00:00 {line}\n" for t, line in bucket])
        else:
            prefix = stamp + " "
            text = prefix + ("\n" + prefix).join([line for _, line in bucket]) + "\n"
        # encoded per second: one emoji would make a large joined str 4 bytes per character
        data = text.encode()
        self.parts.append(data)
        self.parts_len += len(data)
        self.stats.lines += len(bucket)
        self.stats.last_us = max(self.stats.last_us, bucket[-1][0])
        if self.parts_len >= WRITE_CHUNK:
            self._write_parts()

    def _write_parts(self) -> None:
        assert self.out is not None
        self.out.write(b"".join(self.parts))
        self.parts.clear()
        self.parts_len = 0

    def flush_before(self, sec: int) -> None:
        for s in range(self.next_sec, sec):
            self._flush_second(s)
        self.next_sec = max(self.next_sec, sec)

    def flush_all(self) -> None:
        for sec in sorted(self.buckets):
            self._flush_second(sec)
        self._write_parts()

    # ---- ground truth --------------------------------------------------------------------------

    def _count(self, status: str) -> None:
        self.stats.records += 1
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1

    def _records(self, msg: _Msg) -> None:
        for rc in msg.rcpts:
            self._count(rc.status)
            if self.want_truth:
                self.truth.append((rc.t, msg.host.name, msg.qid, msg.message_id, msg.sender, rc.addr,
                                   rc.orig, msg.subject, rc.status, rc.dsn, rc.relay, rc.delay,
                                   rc.attempts, rc.response, msg.client_ip, rc.tls))

    def _pending_record(self, msg: _Msg, t: int) -> None:
        self._count("pending")
        if self.want_truth:
            self.truth.append((t, msg.host.name, msg.qid, msg.message_id, msg.sender, None, None,
                               msg.subject, "pending", None, None, None, 0, None, msg.client_ip, None))

    def _reject_record(self, t: int, h: _Host, sender: str, rcpt: str, reply: str, ip: str) -> None:
        self._count("rejected")
        if self.want_truth:
            self.truth.append((t, h.name, None, None, sender, rcpt, None, None, "rejected",
                               reply.split(" ", 2)[1], None, None, 0, reply, ip, None))

    def write_truth(self, out: BinaryIO) -> None:
        """Sorted by (host, queue ID, recipient, time), ties by JSON text; streamed, since a
        big corpus has ~0.15 records per line."""
        whole = self.fmt != "rfc3339"

        def key(rec: tuple[Any, ...]) -> tuple[str, str, str, int]:
            return rec[1], rec[2] or "", rec[5] or "", rec[0] - rec[0] % US if whole else rec[0]

        self.truth.sort(key=key)
        encode = json.JSONEncoder(ensure_ascii=False).encode
        chunk: list[bytes] = []
        for (*_, t), same in groupby(self.truth, key=key):
            when = iso_utc(EPOCH + timedelta(microseconds=t))
            chunk += sorted(encode(dict(zip(DELIVERY_RECORD_KEYS, (when,) + rec[1:]))).encode() + b"\n"
                            for rec in same)
            if len(chunk) >= 4096:
                out.write(b"".join(chunk))
                chunk.clear()
        out.write(b"".join(chunk))

    # ---- small helpers -------------------------------------------------------------------------

    def pick(self, seq: Sequence[Any]) -> Any:
        """random.choice without its bit-exact rejection sampling, which costs 3x more."""
        return seq[int(self.rnd() * len(seq))]

    def ms(self, lo: float, hi: float) -> int:
        """A random duration between lo and hi milliseconds, in microseconds."""
        return int((lo + self.rnd() * (hi - lo)) * 1000)

    def _external_address(self) -> str:
        return f"{self.pick(_EXT_USERS)}@{self.pick(self.remote_list).domain}"

    def _message_id(self, domain: str) -> str:
        r = self.rnd()
        if r < 0.03:
            return ""               # the client sent none: Postfix logs message-id=<>
        if r < 0.5:
            return f"{self.bits(64):016x}.{self.bits(24):06x}@{domain}"
        return f"CA+{self.bits(80):020X}w@mail.{domain}"

    def _route(self, h: _Host, addr: str) -> _Route:
        domain = addr[addr.rfind("@") + 1:]
        return h.routes.get(domain) or self.remote[domain]

    def _connect(self, tag: str, c: _Client, t: int, tls: bool) -> int:
        self.emit(t, f"{tag}connect from {c.at}")
        if tls:
            t += self.ms(15, 120)
            self.emit(t, f"{tag}Anonymous TLS connection established from {c.at}: {self.pick(_TLS_IN)}")
        return t

    def _disconnect(self, tag: str, c: _Client, t: int, tls: bool, rcpts: int, auth: bool = False) -> None:
        ehlo = "ehlo=2 starttls=1" if tls else "ehlo=1"
        auth_part = " auth=1" if auth else ""
        commands = 4 + rcpts + 2 * tls + auth
        self.emit(t, f"{tag}disconnect from {c.at} {ehlo}{auth_part} mail=1 rcpt={rcpts} data=1 quit=1"
                     f" commands={commands}")

    def _postscreen_pass(self, h: _Host, t: int, c: _Client) -> int:
        """Most port-25 sessions first pass postscreen; returns when smtpd takes over."""
        if self.rnd() < 0.4:
            return t
        port = 30000 + int(self.rnd() * 35000)
        self.emit(t, f"{h.postscreen}CONNECT from [{c.ip}]:{port} to [{h.ip}]:25")
        verdict = "PASS OLD" if self.rnd() < 0.8 else "PASS NEW"
        t += self.ms(1, 6000 if verdict == "PASS NEW" else 5)
        self.emit(t, f"{h.postscreen}{verdict} [{c.ip}]:{port}")
        return t + self.ms(1, 5)

    def _local_envelope(self) -> list[str]:
        """RCPT TO addresses of a message for our domains (mailboxes and aliases), distinct."""
        envelope: list[str] = []
        for _ in range(self.pick(self.local_rcpt_counts)):
            addr = self.pick(self.alias_list) if self.rnd() < 0.2 else self.pick(self.mailboxes)
            if addr not in envelope:
                envelope.append(addr)
        return envelope

    def _outbound_envelope(self, force_remote: bool) -> list[str]:
        """RCPT TO addresses of a submission: mostly remote, some sharing a domain, some local."""
        envelope: list[str] = []
        domain = self.pick(self.remote_list).domain
        for i in range(self.pick(self.local_rcpt_counts)):
            if self.rnd() < 0.15 and not (force_remote and i == 0):
                addr = self.pick(self.mailboxes)
            else:
                if self.rnd() > 0.3:
                    domain = self.pick(self.remote_list).domain
                addr = f"{self.pick(_EXT_USERS)}@{domain}"
            if addr not in envelope:
                envelope.append(addr)
        return envelope

    def _expand(self, envelope: list[str]) -> list[_Rcpt]:
        """Virtual alias expansion: an alias becomes its members, each with orig_to=alias."""
        rcpts: list[_Rcpt] = []
        seen: set[str] = set()
        for addr in envelope:
            members = self.aliases.get(addr)
            for final, orig in ((m, addr) for m in members) if members else ((addr, None),):
                if final not in seen:
                    seen.add(final)
                    rcpts.append(_Rcpt(final, orig))
        return rcpts

    # ---- queueing ------------------------------------------------------------------------------

    def _accept(self, h: _Host, t: int, tag: str, c: _Client, sender: str, first_rcpt: str, mid: str,
                *, sasl: str | None = None, header_checks: bool = True) -> tuple[_Msg, int]:
        """smtpd's client= line and cleanup's lines of a new message; returns it and the time."""
        qid = h.new_qid(t)
        self.stats.messages += 1
        sasl_part = f", sasl_method=PLAIN, sasl_username={sasl}" if sasl else ""
        self.emit(t, f"{tag}{qid}: client={c.at}{sasl_part}")
        msg = _Msg(h, qid, sender, mid, None, c.ip, t, 1500 + int(self.rnd() * 80000))
        t = self._cleanup(msg, t + self.ms(2, 40), f"{c.at}; from=<{sender}> to=<{first_rcpt}>"
                                                   f" proto=ESMTP helo=<{c.helo}>", header_checks)
        return msg, t

    def _cleanup(self, msg: _Msg, t: int, origin: str, header_checks: bool, subject: str | None = None) -> int:
        """cleanup's message-id line and, usually, the header_checks Subject line."""
        cleanup = msg.host.cleanup()
        self.emit(t, f"{cleanup}{msg.qid}: message-id=<{msg.message_id}>")
        if not header_checks or (subject is None and self.rnd() < 0.1):
            return t
        if subject is None:
            logged, msg.subject = self.pick(self.subjects)
        else:
            logged = msg.subject = subject
        t += self.ms(0.1, 3)
        self.emit(t, f"{cleanup}{msg.qid}: info: header Subject: {logged} from {origin}")
        return t

    def _activate(self, msg: _Msg, t: int) -> int:
        t += self.ms(0.5, 20)
        self.emit(t, f"{msg.host.qmgr}{msg.qid}: from=<{msg.sender}>, size={msg.size},"
                     f" nrcpt={len(msg.rcpts)} (queue active)")
        return t

    def _groups(self, msg: _Msg, smtp_prog: str = "postfix/smtp",
                remote_fate: tuple[str, ...] | None = None) -> list[_Group]:
        """Recipients grouped by route (one delivery session each), each group with its fate."""
        groups: dict[int, _Group] = {}
        for rc in msg.rcpts:
            route = self._route(msg.host, rc.addr)
            group = groups.get(id(route))
            if group is None:
                if route.kind == "smtp":
                    fate = remote_fate or self._remote_fate()
                    prog = smtp_prog
                else:
                    fate = ("tempfail", "sent") if route.kind == "lmtp" and self.rnd() < 0.02 else ("sent",)
                    prog = route.prog
                group = groups[id(route)] = _Group(route, prog, fate)
            group.rcpts.append(rc)
        return list(groups.values())

    def _remote_fate(self) -> tuple[str, ...]:
        fate = self.pick(self.remote_fates)
        if fate == "expire":
            return self._deferrals(3) + ("EXPIRE",)
        return fate

    def _deferrals(self, at_least: int) -> tuple[str, ...]:
        return tuple(self.pick(_DEFERRAL_STEPS) for _ in range(at_least + (self.rnd() < 0.5)))

    # ---- delivery ------------------------------------------------------------------------------

    def _deliver_all(self, msg: _Msg, t: int, groups: list[_Group]) -> None:
        """Delivery rounds from qmgr's first activation at t until the message leaves the queue.

        Round r runs step fate[r] of every group that has one; between rounds the message
        waits in the deferred queue (exponential backoff) and qmgr logs it active again.
        EXPIRE returns it to the sender; END leaves it deferred at the end of the log."""
        last = t
        rnd_no = 0
        while True:
            steps = [(g, g.fate[rnd_no]) for g in groups if rnd_no < len(g.fate)]
            if not steps:
                break
            if rnd_no:
                t = max(last, t + min(300 << (rnd_no - 1), 4000) * US) + self.ms(0, 60000)
                kinds = {step for _, step in steps}
                if "END" in kinds:
                    self._records(msg)          # never removed: its ID stays busy
                    return
                if "EXPIRE" in kinds:
                    self._expire(msg, t)
                    return
                t = self._activate(msg, t)
            last = t
            bounced = False
            for group, step in steps:
                end, group_bounced = self._session(msg, group, step, t + self.ms(1, 250))
                last = max(last, end)
                bounced = bounced or group_bounced
            if bounced:
                last = self._notice(msg, last)
            rnd_no += 1
        self._remove(msg, last)

    def _remove(self, msg: _Msg, t: int) -> None:
        t += self.ms(0.2, 5)
        self.emit(t, f"{msg.host.qmgr}{msg.qid}: removed")
        msg.host.free_qid(msg.qid, t)
        self._records(msg)

    def _expire(self, msg: _Msg, t: int) -> None:
        self.emit(t, f"{msg.host.qmgr}{msg.qid}: from=<{msg.sender}>, status=expired, returned to sender")
        for rc in msg.rcpts:
            if rc.status == "deferred":
                rc.status = "expired"
                rc.t = t
        self._remove(msg, self._notice(msg, t))

    def _notice(self, msg: _Msg, t: int) -> int:
        """bounce(8)'s non-delivery notice to the sender, a message of its own.

        Returns the time of bounce's line naming it (the original is removed after that)."""
        h = msg.host
        t += self.ms(1, 30)
        qid = h.new_qid(t)
        self.stats.messages += 1
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(t // US))
        notice = _Msg(h, qid, "", f"{stamp}.{qid}@{h.fqdn}", None, None, t, msg.size + 2500,
                      [_Rcpt(msg.sender, None)])
        t = self._cleanup(notice, t, f"local; from=<> to=<{msg.sender}>", True, NOTICE_SUBJECT)
        t += self.ms(0.5, 5)
        self.emit(t, f"{h.bounce()}{msg.qid}: sender non-delivery notification: {qid}")
        self._deliver_all(notice, self._activate(notice, t), self._groups(notice))
        return t

    def _attempt(self, tag: str, msg: _Msg, rc: _Rcpt, t: int, s: int, tc: int, relay: str,
                 dsn: str, status: str, response: str, tls: str | None) -> None:
        """One delivery line (session started at s, connected at tc), and the recipient's state."""
        delay_cs = (t - msg.arrival) // 10000
        delays = (f"{_fmt_delay((s - msg.arrival) // 10000)}/{_fmt_delay(int(self.rnd() * 3))}/"
                  f"{_fmt_delay((tc - s) // 10000)}/{_fmt_delay((t - tc) // 10000)}")
        delay = _fmt_delay(delay_cs)
        orig = f"orig_to=<{rc.orig}>, " if rc.orig else ""
        self.emit(t, f"{tag}{msg.qid}: to=<{rc.addr}>, {orig}relay={relay}, delay={delay},"
                     f" delays={delays}, dsn={dsn}, status={status} ({response})")
        rc.attempts += 1
        rc.t = t
        rc.dsn = dsn
        rc.relay = relay
        rc.delay = _DELAYS[delay_cs][1] if delay_cs < 1000 else float(delay)
        rc.response = response
        rc.status = status
        rc.tls = tls

    def _session(self, msg: _Msg, group: _Group, step: str, s: int) -> tuple[int, bool]:
        """One delivery agent session; returns when it ended and whether a recipient bounced."""
        kind = group.route.kind
        if kind == "smtp":
            return self._smtp_session(msg, group, step, s)
        if kind == "filter":
            return self._filter_session(msg, group, s), False
        return self._local_session(msg, group, step, s), False

    def _smtp_session(self, msg: _Msg, group: _Group, step: str, s: int) -> tuple[int, bool]:
        route = group.route
        tag = msg.host.tag(group.prog)
        mx, ip = route.mx, route.ip
        t = s
        if step in ("refused", "timeout", "failover"):
            # timeouts take smtp_connect_timeout (30 s); refusals are immediate
            t += self.ms(30000, 30050) if step == "timeout" else self.ms(1, 40)
            reason = "Connection timed out" if step == "timeout" else "Connection refused"
            failure = f"connect to {mx}[{ip}]:25: {reason}"
            self.emit(t, tag + failure)
            if step != "failover":
                return self._defer_all(tag, msg, group, t, s, t, "none", "4.4.1", failure), False
            mx, ip = route.mx2, route.ip2
        if step == "lost":
            t += self.ms(100, 900)
            return self._defer_all(tag, msg, group, t, s, t, f"{mx}[{ip}]:25", "4.4.2",
                                   f"lost connection with {mx}[{ip}] while receiving the initial server"
                                   " greeting"), False
        t += self.ms(20, 400)
        tls = None
        if route.tls_mode:
            tls = route.tls_text.split(" ", 1)[0]
            self.emit(t, f"{tag}{route.tls_mode} TLS connection established to {mx}[{ip}]:25:"
                         f" {route.tls_text}")
        tc = t
        t += self.ms(30, 1500)
        relay = f"{mx}[{ip}]:25"
        if step == "greylist":
            dsn, template = self.pick(_GREYLIST)
            for rc in group.rcpts:
                t += self.ms(0.1, 2)
                self._attempt(tag, msg, rc, t, s, tc, relay, dsn, "deferred",
                              template.format(mx=mx, ip=ip, r=rc.addr, d=route.domain), tls)
            return t, False
        reply = route.reply_style.format(q=f"{self.bits(40):010X}", n=self.bits(30), m=self.bits(16))
        bounced = False
        for rc in group.rcpts:
            t += self.ms(0.1, 2)
            if self.rnd() < _HARD_BOUNCE_RATE:
                response = self.pick(_NOSUCHUSER).format(mx=mx, ip=ip, r=rc.addr)
                dsn = "5.2.2" if " 552 " in response else "5.1.1"
                self._attempt(tag, msg, rc, t, s, tc, relay, dsn, "bounced", response, tls)
                bounced = True
            else:
                self._attempt(tag, msg, rc, t, s, tc, relay, "2.0.0", "sent", reply, tls)
        return t, bounced

    def _defer_all(self, tag: str, msg: _Msg, group: _Group, t: int, s: int, tc: int, relay: str,
                   dsn: str, response: str) -> int:
        for rc in group.rcpts:
            t += self.ms(0.05, 1)
            self._attempt(tag, msg, rc, t, s, tc, relay, dsn, "deferred", response, None)
        return t

    def _local_session(self, msg: _Msg, group: _Group, step: str, s: int) -> int:
        route = group.route
        h = msg.host
        tag = h.tag(group.prog)
        t = s
        for rc in group.rcpts:
            tc = t
            t += self.ms(3, 60)
            if step == "tempfail":
                self._attempt(tag, msg, rc, t, s, tc, route.relay, "4.3.0", "deferred",
                              f"host {route.relay} said: 451 4.3.0 <{rc.addr}> Temporary internal failure"
                              " (in reply to end of DATA command)", None)
                continue
            reply = route.reply
            if route.kind == "lmtp":
                session = self.pick(self.lmtp_ids)
                self.emit(t - 200, f"{h.dovecot}lmtp({rc.addr})<{PID_MIN + int(self.rnd() * 9000)}>"
                                   f"<{session}>: msgid=<{msg.message_id}>: saved mail to INBOX")
                reply = f"250 2.0.0 <{rc.addr}> {session} Saved"
            self._attempt(tag, msg, rc, t, s, tc, route.relay, "2.0.0", "sent", reply, None)
        return t

    def _filter_session(self, msg: _Msg, group: _Group, s: int) -> int:
        """Delivery to amavis on 127.0.0.1:10024, which re-injects the message into
        smtpd on 10025 (the child queue ID) before it answers the parent's DATA."""
        h = msg.host
        tag = h.tag("postfix/smtp")
        child_tag = h.tag("postfix/smtpd")
        t = s + self.ms(5, 30)
        self.emit(t, f"{child_tag}connect from {self.localhost.at}")
        t += self.ms(80, 900)               # scanning
        child, t = self._accept(h, t, child_tag, self.localhost, msg.sender, msg.rcpts[0].addr,
                                msg.message_id or "", header_checks=False)
        child.size = msg.size + 900
        child.rcpts = self._expand([rc.addr for rc in msg.rcpts])
        t_child = self._activate(child, t)
        t = t_child + self.ms(1, 10)
        amavis_pid = self.pick(h.amavis_pids)
        self.emit(t, f"{h.name} amavis[{amavis_pid}]: ({amavis_pid}-{1 + int(self.rnd() * 20):02d}) Passed"
                     f" CLEAN {{RelayedInbound}}, [{msg.client_ip}] <{msg.sender}> ->"
                     f" {','.join(f'<{rc.addr}>' for rc in msg.rcpts)}, Queue-ID: {msg.qid},"
                     f" Message-ID: <{msg.message_id}>, mail_id: {self.bits(48):012x},"
                     f" Hits: {self.rnd() * 4 - 1:.3f}, size: {msg.size}, queued_as: {child.qid},"
                     f" {(t - s) // 1000} ms")
        reply = (f"250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as {child.qid}"
                 if self.rnd() < 0.5 else f"250 2.0.0 Ok: queued as {child.qid}")
        tc = s + self.ms(1, 4)
        for rc in msg.rcpts:
            t += self.ms(0.1, 1)
            self._attempt(tag, msg, rc, t, s, tc, group.route.relay, "2.0.0", "sent", reply, None)
        self.emit(t + self.ms(1, 20), f"{child_tag}disconnect from {self.localhost.at} ehlo=1 mail=1"
                                      f" rcpt={len(msg.rcpts)} data=1 quit=1 commands={4 + len(msg.rcpts)}")
        self._deliver_all(child, t_child, self._groups(child))
        return t

    # ---- traffic units -------------------------------------------------------------------------

    def _inbound(self, h: _Host, t: int, *, filtered: bool = False, pending: bool = False) -> None:
        """Internet mail for our domains via smtpd on port 25."""
        c = self.pick(self.clients)
        t = self._postscreen_pass(h, t, c)
        tag = h.tag("postfix/smtpd")
        tls = self.rnd() < 0.65
        t = self._connect(tag, c, t, tls)
        sender = "" if self.rnd() < 0.03 else self._external_address()
        envelope = self._local_envelope()
        t += self.ms(30, 400)
        if self.rnd() < 0.5:
            self.emit(t, f"{h.tag('policyd-spf')}prepend Received-SPF: Pass (mailfrom) identity=mailfrom;"
                         f" client-ip={c.ip}; helo={c.helo}; envelope-from={sender}; receiver=<UNKNOWN>")
            t += self.ms(0.5, 5)
        sender_domain = sender.rpartition("@")[2] or c.name
        msg, t = self._accept(h, t, tag, c, sender, envelope[0], self._message_id(sender_domain))
        # before a content filter, address mappings are off: the child expands the aliases
        msg.rcpts = [_Rcpt(a, None) for a in envelope] if filtered else self._expand(envelope)
        t = self._activate(msg, t)
        self._disconnect(tag, c, t + self.ms(5, 200), tls, len(envelope))
        if pending:
            self._pending_record(msg, t)
        elif filtered:
            self._deliver_all(msg, t, [_Group(_Route("filter", "127.0.0.1[127.0.0.1]:10024"),
                                              "postfix/smtp", ("sent",), msg.rcpts)])
        else:
            self._deliver_all(msg, t, self._groups(msg))

    def _filtered(self, h: _Host, t: int) -> None:
        self._inbound(h, t, filtered=True)

    def _submission(self, h: _Host, t: int, *, tail: bool = False) -> None:
        """Authenticated users sending mostly to remote domains; DKIM-signed."""
        c = self.pick(self.subm_clients)
        sender = self.pick(self.mailboxes)
        tag = h.tag("postfix/submission/smtpd")
        t = self._connect(tag, c, t, True)
        envelope = self._outbound_envelope(force_remote=tail)
        t += self.ms(100, 900)
        msg, t = self._accept(h, t, tag, c, sender, envelope[0], self._message_id(sender.rpartition("@")[2]),
                              sasl=sender if self.rnd() < 0.7 else sender.partition("@")[0])
        msg.rcpts = [_Rcpt(a, None) for a in envelope]
        t += self.ms(1, 20)
        self.emit(t, f"{h.opendkim}{msg.qid}: DKIM-Signature field added (s=mail,"
                     f" d={sender.rpartition('@')[2]})")
        t = self._activate(msg, t)
        self._disconnect(tag, c, t + self.ms(5, 200), True, len(envelope), auth=True)
        prog = "postfix-out/smtp" if self.rnd() < 0.3 else "postfix/smtp"
        self._deliver_all(msg, t, self._groups(msg, prog, self._deferrals(1) + ("END",) if tail else None))

    def _pickup(self, h: _Host, t: int, user: str, uid: int, rcpts: list[_Rcpt], first: str,
                subject: str) -> None:
        """Mail submitted with sendmail(1): pickup, then cleanup adds a message-id."""
        qid = h.new_qid(t)
        self.stats.messages += 1
        self.emit(t, f"{h.pickup}{qid}: uid={uid} from=<{user}>")
        sender = f"{user}@{h.fqdn}"
        t += self.ms(1, 20)
        mid = f"{time.strftime('%Y%m%d%H%M%S', time.gmtime(t // US))}.{qid}@{h.fqdn}"
        msg = _Msg(h, qid, sender, mid, None, None, t, 800 + int(self.rnd() * 20000), rcpts)
        t = self._cleanup(msg, t, f"local; from=<{sender}> to=<{first}>", True, subject)
        t = self._activate(msg, t)
        self._deliver_all(msg, t, self._groups(msg))

    def _cron(self, h: _Host, t: int) -> None:
        # root is aliased to admin: local(8) logs the alias as given, unqualified
        rcpt = _Rcpt(f"admin@{h.fqdn}", "root")
        subject = self.pick(_CRON_SUBJECTS).format(h=h.name)
        self._pickup(h, t, "root", 0, [rcpt], f"root@{h.fqdn}", subject)

    def _webapp(self, h: _Host, t: int) -> None:
        envelope = self._outbound_envelope(force_remote=True)[:2]
        subject = self.pick(_APP_SUBJECTS).format(n=self.bits(20))
        self._pickup(h, t, "www-data", 33, [_Rcpt(a, None) for a in envelope], envelope[0], subject)

    def _reject(self, h: _Host, t: int) -> None:
        """An SMTP session whose recipients are all refused at RCPT time (NOQUEUE)."""
        c = self.pick(self.clients)
        t = self._postscreen_pass(h, t, c)
        tag = h.tag("postfix/smtpd")
        tls = self.rnd() < 0.3
        t = self._connect(tag, c, t, tls)
        sender = "" if self.rnd() < 0.05 else self._external_address()
        why = int(self.rnd() * 7)
        if why == 2:
            sender = f"{self.pick(_EXT_USERS)}@{self.pick(_EXT_WORDS)}.invalid"
        count = 1 + int(self.rnd() * 3)
        for _ in range(count):
            t += self.ms(50, 900)
            rcpt = self._external_address() if why == 0 else self.pick(self.mailboxes)
            if why == 1:
                rcpt = f"{self.pick(_EXT_USERS)}{int(self.rnd() * 99)}@{self.pick(LOCAL_DOMAINS)}"
            reply = self._reject_reply(why, c, sender, rcpt)
            self.emit(t, f"{tag}NOQUEUE: reject: RCPT from {c.at}: {reply}; from=<{sender}> to=<{rcpt}>"
                         f" proto=ESMTP helo=<{c.helo}>")
            self._reject_record(t, h, sender, rcpt, reply, c.ip)
        ehlo = "ehlo=2 starttls=1" if tls else "ehlo=1"
        accepted = 5 if tls else 3     # ehlo (+ starttls, ehlo), mail, quit
        self.emit(t + self.ms(5, 300), f"{tag}disconnect from {c.at} {ehlo} mail=1 rcpt=0/{count}"
                                       f" quit=1 commands={accepted}/{accepted + count}")

    def _reject_reply(self, why: int, c: _Client, sender: str, rcpt: str) -> str:
        domain = rcpt.rpartition("@")[2]
        return (f"554 5.7.1 <{rcpt}>: Relay access denied",
                f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table",
                f"450 4.1.8 <{sender}>: Sender address rejected: Domain not found",
                f"554 5.7.1 Service unavailable; Client host [{c.ip}] blocked using zen.spamhaus.org;"
                f" https://www.spamhaus.org/query/ip/{c.ip}",
                f"450 4.7.1 Client host rejected: cannot find your hostname, [{c.ip}]",
                f"504 5.5.2 <{c.helo}>: Helo command rejected: need fully-qualified hostname",
                f"450 4.2.0 <{rcpt}>: Recipient address rejected: Greylisted, see"
                f" http://postgrey.example/help/{domain}.html")[why]

    # ---- noise: lines that carry no delivery ---------------------------------------------------

    def _postscreen_block(self, h: _Host, t: int) -> None:
        c = self.pick(self.clients)
        port = 30000 + int(self.rnd() * 35000)
        self.emit(t, f"{h.postscreen}CONNECT from [{c.ip}]:{port} to [{h.ip}]:25")
        t += self.ms(5, 200)
        if self.rnd() < 0.3:
            self.emit(t, f"{h.postscreen}PREGREET 11 after 0.{int(self.rnd() * 90) + 10} from"
                         f" [{c.ip}]:{port}: EHLO User\\r\\n")
            t += self.ms(1, 50)
        self.emit(t, f"{h.dnsblog}addr {c.ip} listed by domain zen.spamhaus.org as 127.0.0.{2 + int(self.rnd() * 3)}")
        t += self.ms(1, 50)
        self.emit(t, f"{h.postscreen}DNSBL rank 3 for [{c.ip}]:{port}")
        t += self.ms(100, 6000)
        self.emit(t, f"{h.postscreen}DISCONNECT [{c.ip}]:{port}")

    def _sasl_failure(self, h: _Host, t: int) -> None:
        c = self.pick(self.clients)
        c = _Client("unknown", c.ip, c.helo)
        tag = h.tag("postfix/submission/smtpd")
        t = self._connect(tag, c, t, True)
        t += self.ms(500, 4000)
        self.emit(t, f"{tag}warning: {c.at}: SASL LOGIN authentication failed: UGFzc3dvcmQ6")
        t += self.ms(1, 300)
        self.emit(t, f"{tag}lost connection after AUTH from {c.at}")
        self.emit(t + 50, f"{tag}disconnect from {c.at} ehlo=2 starttls=1 auth=0/1 commands=3/4")

    def _unresolved(self, h: _Host, t: int) -> None:
        c = self.pick(self.clients)
        tag = h.tag("postfix/smtpd")
        self.emit(t, f"{tag}warning: hostname {c.name if c.name != 'unknown' else 'dsl-pool.isp.example'}"
                     f" does not resolve to address {c.ip}: Name or service not known")
        c = _Client("unknown", c.ip, c.helo)
        t = self._connect(tag, c, t + self.ms(1, 20), False)
        t += self.ms(200, 3000)
        self.emit(t, f"{tag}lost connection after EHLO from {c.at}")
        self.emit(t + 40, f"{tag}disconnect from {c.at} ehlo=1 commands=1")

    def _tls_noise(self, h: _Host, t: int) -> None:
        c = self.pick(self.clients)
        tag = h.tag("postfix/smtpd")
        t = self._connect(tag, c, t, False)
        t += self.ms(50, 500)
        if self.rnd() < 0.5:
            self.emit(t, f"{tag}warning: TLS library problem: error:0A000126:SSL routines::unexpected eof"
                         " while reading:../ssl/record/rec_layer_s3.c:317:")
            self.emit(t + 30, f"{tag}lost connection after STARTTLS from {c.at}")
            self.emit(t + 60, f"{tag}disconnect from {c.at} ehlo=1 starttls=0/1 commands=1/2")
        else:
            self.emit(t, f"{tag}improper command pipelining after CONNECT from {c.at}: GET / HTTP/1.1\\r\\n")
            self.emit(t + 30, f"{tag}disconnect from {c.at} unknown=0/1 commands=0/1")

    def _anvil(self, t: int) -> None:
        """anvil's periodic statistics; its own `at` time is always in BSD syslog style."""
        when = self._anvil_time(t - int(self.rnd() * ANVIL_PERIOD))
        for h in self.hosts:
            ip = self.pick(self.clients).ip
            self.emit(t, f"{h.anvil}statistics: max connection rate {1 + int(self.rnd() * 5)}/60s for"
                         f" (smtp:{ip}) at {when}")
            self.emit(t, f"{h.anvil}statistics: max connection count 1 for (smtp:{ip}) at {when}")
            self.emit(t, f"{h.anvil}statistics: max cache size {2 + int(self.rnd() * 9)} at {when}")

    @staticmethod
    def _anvil_time(t: int) -> str:
        tm = time.gmtime(t // US)
        return f"{MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"

    # ---- driver --------------------------------------------------------------------------------

    def run(self, n_lines: int) -> None:
        t = self.start_us
        next_anvil = t + ANVIL_PERIOD // 5     # the log starts mid-interval
        arrivals = 0
        hosts = self.hosts
        while self.scheduled < n_lines:
            self.flush_before(t // US)
            if t >= next_anvil:
                self._anvil(t)
                next_anvil += ANVIL_PERIOD
            self.pick(self.units)(hosts[int(self.rnd() * len(hosts))], t)
            t += 1 + int(self.expo(self.rate) * US)
            arrivals += 1
            if arrivals % 65536 == 0:
                for h in hosts:
                    h.prune(t)
        self._tail(max(t // US, max(self.buckets, default=0)) * US + 2 * US, n_lines)
        self.flush_all()

    def _tail(self, t: int, n_lines: int) -> None:
        """A few messages still queued when the log ends: deferred ones and pending ones."""
        for i in range(min(3, n_lines // 500)):
            h = self.hosts[i % len(self.hosts)]
            self._submission(h, t, tail=True)
            self._inbound(h, t + self.ms(100, 3000), pending=True)
            t += self.ms(500, 5000)


def _micros(start: datetime) -> int:
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return (start - EPOCH) // timedelta(microseconds=1)


def generate(out: BinaryIO | str | os.PathLike, n_lines: int, *, seed: int = 1,
             start: datetime = datetime(2026, 11, 1, tzinfo=UTC), hosts: Sequence[str] = ("mx1",),
             timestamp_format: Format = "bsd",
             truth: BinaryIO | str | os.PathLike | None = None,
             messages_per_second: float = 5.0) -> GeneratorStats:
    """Write about n_lines of Postfix log to out (and the delivery records to truth, as JSON Lines).

    Traffic units (messages, reject sessions, noise sessions) arrive at messages_per_second
    on average. New ones stop once n_lines are scheduled; messages in flight are finished, then
    a few deliberately unfinished ones (deferred, pending) end the log. Same arguments, same
    bytes. All times are UTC; a naive start is taken as UTC."""
    if timestamp_format not in FORMATS:
        raise ValueError(f"timestamp_format must be one of {FORMATS}")
    if not hosts:
        raise ValueError("at least one host is needed")
    sim = _Sim(seed, _micros(start), hosts, timestamp_format, truth is not None, messages_per_second)
    with ExitStack() as stack:
        sim.out = _open(stack, out)
        sim.run(n_lines)
        if truth is not None:
            sim.write_truth(_open(stack, truth))
    return sim.stats


def _open(stack: ExitStack, target: BinaryIO | str | os.PathLike) -> BinaryIO:
    if isinstance(target, (str, os.PathLike)):
        return stack.enter_context(open(target, "wb", buffering=WRITE_CHUNK))
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exporter.generator",
                                     description="Write a synthetic Postfix log with ground truth.")
    parser.add_argument("--lines", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True, help="log file to write ('-' for stdout)")
    parser.add_argument("--truth", help="JSON Lines file for the expected delivery records")
    parser.add_argument("--format", choices=FORMATS, default="bsd")
    parser.add_argument("--start", type=datetime.fromisoformat, default=datetime(2026, 11, 1, tzinfo=UTC),
                        help="time of the first line, ISO 8601 (UTC if no offset)")
    parser.add_argument("--hosts", default="mx1", help="comma-separated syslog host names")
    parser.add_argument("--rate", type=float, default=5.0, help="arriving sessions per second")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    out = sys.stdout.buffer if args.out == "-" else args.out
    stats = generate(out, args.lines, seed=args.seed, start=args.start, hosts=args.hosts.split(","),
                     timestamp_format=args.format, truth=args.truth, messages_per_second=args.rate)
    elapsed = time.perf_counter() - began
    print(f"{stats.lines} lines, {stats.messages} messages, {stats.records} records {stats.by_status}"
          f" in {elapsed:.2f} s ({stats.lines / elapsed:,.0f} lines/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
