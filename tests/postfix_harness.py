"""Run a private, loopback-only Postfix instance against local sink SMTP servers.

Used by tests/test_postfix_e2e.py; also runnable by hand to produce a real maillog:

    sudo .venv/bin/python tests/postfix_harness.py [OUT.log]

What it builds (all under one fresh temporary directory, nothing of the system Postfix is
touched or started):

- ``conf/``  a private ``config_directory`` (``postfix -c conf``) with main.cf, master.cf,
  a ``texthash:`` transport map and a ``regexp:`` header_checks table (``/^Subject:/ INFO``).
- ``queue/`` and ``data/``: private ``queue_directory`` and ``data_directory``; Postfix's own
  ``post-install create-missing`` (run by ``postfix start``) creates the queue subdirectories.
- ``maillog``: ``maillog_file`` written by postlogd (the ``postlog`` service in master.cf).

Network: only 127.0.0.0/8. Postfix's smtpd listens on 127.0.0.2:<free port>; the test client
connects from 127.0.0.3; the sinks listen on 127.0.0.1:<free ports>. Every destination domain is
routed by ``transport_maps`` to a bracketed loopback next hop (no MX lookups), everything else
goes to ``error:``; the SMTP client never uses DNS (``smtp_dns_support_level = disabled``,
``smtp_host_lookup = native``) and smtpd does no reverse lookup of the client
(``smtpd_peername_lookup = no``; a PTR query for 127.0.0.3 would go to the system resolver).

Scenarios (domain -> next hop):

- ``accept.test``  sink "a": accepts everything and records (mail_from, rcpt, subject, message-id).
  ``senders.test`` is routed there too, so bounce/delay notices to our senders land in sink a.
- ``reject.test``  sink "b": ``550 5.1.1 User unknown`` at RCPT -> bounced + a bounce notice.
- ``grey.test``    sink "c": ``450 4.2.0`` for the first attempt of each recipient, then accepts
  -> one deferral, then sent (attempts >= 2).
- ``down.test``    a loopback port where nothing listens -> ``Connection refused`` deferrals until
  ``maximal_queue_lifetime`` (20 s) runs out -> ``status=expired, returned to sender`` + notice.
  We wait for the expiry (the final state), so the queue is empty when the run ends.
- ``denied.test``  not in ``relay_domains``: smtpd answers ``554 5.7.1 Relay access denied`` at
  RCPT time (``NOQUEUE: reject``, and ``QID: reject`` once an earlier recipient was accepted).

Times: Postfix runs with TZ=UTC in its environment (imported through ``import_environment``), so
the year-less maillog timestamps are UTC.
"""
from __future__ import annotations

import base64
import contextlib
import email.header
import email.utils
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.parser import BytesParser
from email import policy
from pathlib import Path
from typing import Iterator

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"

MYHOSTNAME = "mx.test.example"
SMTPD_ADDR = "127.0.0.2"     # Postfix's smtpd
CLIENT_ADDR = "127.0.0.3"    # our test client's source address
SINK_ADDR = "127.0.0.1"      # the sinks
CLIENT_HELO = "client.test"

ACCEPT, REJECT, GREY, DOWN, DENIED, SENDERS = (
    "accept.test", "reject.test", "grey.test", "down.test", "denied.test", "senders.test")

QUEUE_LIFETIME_S = 20        # maximal_queue_lifetime: down.test expires within the run
DELAY_WARNING_S = 8          # delay_warning_time: down.test also gets a delay notice first
DRAIN_TIMEOUT_S = 120


class PostfixUnavailable(RuntimeError):
    """Postfix (or root) is missing: the caller decides whether that skips or fails."""


def postfix_missing_reason() -> str | None:
    """None when a real Postfix can be run here, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to start a private Postfix instance"
    if not (Path(POSTFIX).exists() and Path(POSTQUEUE).exists()):
        return "postfix is not installed (run .ci/install-postfix.sh as root)"
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        return "aiosmtpd is not installed (pip install -e '.[dev]')"
    return None


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- sinks

@dataclass
class SinkDelivery:
    sink: str
    mail_from: str
    rcpt: str
    subject: str | None           # decoded
    raw_subject: str | None       # as it was on the wire
    message_id: str | None        # without angle brackets
    received_at: float


class _SinkHandler:
    """aiosmtpd handler: 'accept', 'reject' (550 5.1.1) or 'grey' (450 once per recipient)."""

    def __init__(self, name: str, behavior: str, log: list[SinkDelivery], lock: threading.Lock):
        self.name, self.behavior, self.log, self.lock = name, behavior, log, lock
        self.rcpt_attempts: dict[str, int] = {}
        self.counter = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            n = self.rcpt_attempts[address.lower()] = self.rcpt_attempts.get(address.lower(), 0) + 1
        if self.behavior == "reject":
            return "550 5.1.1 User unknown"
        if self.behavior == "grey" and n == 1:
            return "450 4.2.0 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        msg = BytesParser(policy=policy.compat32).parsebytes(envelope.original_content or envelope.content)
        raw_subject = msg.get("Subject")
        subject = None
        if raw_subject is not None:
            subject = str(email.header.make_header(email.header.decode_header(raw_subject)))
        mid = msg.get("Message-ID")
        mid = mid.strip().strip("<>") if mid is not None else None
        now = time.time()
        mail_from = "" if envelope.mail_from in ("<>", None) else envelope.mail_from
        with self.lock:
            self.counter += 1
            for rcpt in envelope.rcpt_tos:
                self.log.append(SinkDelivery(self.name, mail_from, rcpt, subject,
                                             None if raw_subject is None else str(raw_subject), mid, now))
            n = self.counter
        # Real MTAs answer like this; the reply text ends up in Postfix's log inside (...).
        return f"250 2.0.0 Ok: queued as SINK{self.name.upper()}{n:04d}"


class Sinks:
    """Three aiosmtpd servers in threads plus one dead port."""

    def __init__(self) -> None:
        self.deliveries: list[SinkDelivery] = []
        self.lock = threading.Lock()
        self.controllers = {}
        self.handlers: dict[str, _SinkHandler] = {}
        self.ports: dict[str, int] = {}

    def _new_port(self) -> int:
        while (port := free_port(SINK_ADDR)) in self.ports.values():
            pass
        return port

    def start(self) -> None:
        from aiosmtpd.controller import Controller
        for name, behavior in (("a", "accept"), ("b", "reject"), ("c", "grey")):
            handler = _SinkHandler(name, behavior, self.deliveries, self.lock)
            port = self._new_port()
            ctl = Controller(handler, hostname=SINK_ADDR, port=port, server_hostname=f"sink-{name}.test",
                             ready_timeout=10.0)
            ctl.start()
            self.controllers[name], self.handlers[name], self.ports[name] = ctl, handler, port
        # d: a port nothing listens on (taken and released; nobody else binds 127.0.0.1 ports here)
        self.ports["d"] = self._new_port()

    def stop(self) -> None:
        for ctl in self.controllers.values():
            with contextlib.suppress(Exception):
                ctl.stop()
        self.controllers.clear()

    def rcpt_attempts(self, sink: str, rcpt: str) -> int:
        return self.handlers[sink].rcpt_attempts.get(rcpt.lower(), 0)

    def snapshot(self) -> list[SinkDelivery]:
        with self.lock:
            return list(self.deliveries)


# --------------------------------------------------------------------------- postfix instance

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{smtpd_addr}:{smtpd_port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
        -o syslog_name=postfix/$service_name
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _main_cf(conf: Path, queue: Path, data: Path, maillog: Path) -> str:
    return f"""\
# Private loopback-only test instance (tests/postfix_harness.py). Not the system Postfix.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {maillog}
maillog_file_prefixes = {maillog.parent}
myhostname = {MYHOSTNAME}
mydomain = test.example
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
# The test client (127.0.0.3) is NOT in mynetworks: it may only send to relay_domains.
mynetworks = 127.0.0.1/32
relay_domains = {ACCEPT} {REJECT} {GREY} {DOWN}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions =
smtpd_peername_lookup = no
smtpd_banner = $myhostname ESMTP test
transport_maps = texthash:{conf}/transport
default_transport = error:5.3.0 unrouted destination in the test instance
relay_transport = error:5.3.0 unrouted destination in the test instance
relayhost =
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_tls_security_level = none
smtpd_tls_security_level = none
header_checks = regexp:{conf}/header_checks
minimal_backoff_time = 2s
maximal_backoff_time = 4s
queue_run_delay = 1s
maximal_queue_lifetime = {QUEUE_LIFETIME_S}s
bounce_queue_lifetime = {QUEUE_LIFETIME_S}s
delay_warning_time = {DELAY_WARNING_S}s
smtp_connect_timeout = 5s
biff = no
append_dot_mydomain = no
readme_directory = no
"""


@dataclass
class SentMessage:
    key: str
    sender: str
    recipients: list[str]               # as given to RCPT TO
    accepted: list[str]                 # recipients smtpd accepted
    refused: dict[str, tuple[int, str]]  # recipient -> smtpd reply
    subject_raw: str | None             # Subject header as sent (maybe encoded-words)
    subject: str | None                 # decoded
    message_id: str | None              # as sent, without <>; None when we sent none
    queue_id: str | None                # from "250 2.0.0 Ok: queued as QID"; None when no DATA
    sent_at: float = 0.0


@dataclass
class RunResult:
    workdir: Path
    maillog: Path
    started_utc: datetime               # just before `postfix start`
    finished_utc: datetime
    messages: dict[str, SentMessage]
    deliveries: list[SinkDelivery]
    sink_ports: dict[str, int]
    sink_rcpt_attempts: dict[str, dict[str, int]]
    drained: bool
    timings: dict[str, float] = field(default_factory=dict)

    def maillog_text(self) -> str:
        return self.maillog.read_text(encoding="utf-8", errors="replace")


class PostfixInstance:
    def __init__(self, workdir: Path, sinks: Sinks):
        self.workdir = workdir
        self.conf = workdir / "conf"
        self.queue = workdir / "queue"
        self.data = workdir / "data"
        self.maillog = workdir / "maillog"
        self.sinks = sinks
        self.smtpd_port = free_port(SMTPD_ADDR)
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "UTC", "LANG": "C",
                    "MAIL_CONFIG": str(self.conf)}
        self.started = False

    # -- configuration
    def write_config(self) -> None:
        for d in (self.conf, self.queue):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o755)
        self.data.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.data, "postfix", "postfix")
        os.chmod(self.data, 0o700)
        p = self.sinks.ports
        nexthop = lambda key: f"smtp:[{SINK_ADDR}]:{p[key]}"  # noqa: E731
        (self.conf / "transport").write_text(
            f"{ACCEPT}\t{nexthop('a')}\n{SENDERS}\t{nexthop('a')}\n{REJECT}\t{nexthop('b')}\n"
            f"{GREY}\t{nexthop('c')}\n{DOWN}\t{nexthop('d')}\n")
        (self.conf / "header_checks").write_text("/^Subject:/ INFO\n")
        (self.conf / "main.cf").write_text(_main_cf(self.conf, self.queue, self.data, self.maillog))
        (self.conf / "master.cf").write_text(MASTER_CF.format(smtpd_addr=SMTPD_ADDR, smtpd_port=self.smtpd_port))
        for f in self.conf.iterdir():
            os.chmod(f, 0o644)

    def _run(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
                               f"{self._tty_diagnostics(args)}\n--- maillog ---\n{self._maillog_tail()}")
        return proc

    def _tty_diagnostics(self, args) -> str:
        """Postfix commands print their fatal errors only to a terminal (or syslog, or the
        maillog once postlogd runs); rerun `postfix check` under script(1) to see them."""
        script = shutil.which("script")
        if not script or Path(args[0]).name != "postfix":
            return ""
        with contextlib.suppress(Exception):
            proc = subprocess.run([script, "-qec", f"{POSTFIX} -c {self.conf} check", "/dev/null"], env=self.env,
                                  capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            return "\n`postfix check` on a terminal said:\n" + proc.stdout + proc.stderr
        return ""

    def _maillog_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.maillog.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no maillog)"

    def check(self) -> str:
        proc = self._run(POSTFIX, "-c", str(self.conf), "check", check=False)
        return proc.stdout + proc.stderr

    def start(self) -> None:
        self._run(POSTFIX, "-c", str(self.conf), "start", timeout=60)
        self.started = True
        # smtpd is spawned on demand; wait until master listens.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((SMTPD_ADDR, self.smtpd_port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
            time.sleep(0.2)
        raise RuntimeError(f"Postfix smtpd on {SMTPD_ADDR}:{self.smtpd_port} did not answer\n{self._maillog_tail()}")

    def master_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.queue / "pid" / "master.pid").read_text().split()[0])
        return None

    def stop(self) -> None:
        if not self.started:
            return
        pid = self.master_pid()
        with contextlib.suppress(Exception):
            self._run(POSTFIX, "-c", str(self.conf), "stop", timeout=30, check=False)
        # `postfix stop` waits up to 5 s and then kills the master's process group; make sure
        # the master we started (and only it) is gone.
        deadline = time.monotonic() + 15
        while pid and time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if pid and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.started = False

    def queue_listing(self) -> str:
        proc = self._run(POSTQUEUE, "-c", str(self.conf), "-p", check=False, timeout=30)
        return proc.stdout + proc.stderr

    def wait_drained(self, timeout: float = DRAIN_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Mail queue is empty" in self.queue_listing():
                return True
            time.sleep(0.5)
        return False

    # -- SMTP client side
    def send(self, key: str, sender: str, recipients: list[str], subject_header: str | None,
             message_id: str | None, body: str) -> SentMessage:
        msg = EmailMessage(policy=policy.SMTP)
        msg["From"] = sender
        msg["To"] = ", ".join(recipients)
        msg["Date"] = email.utils.formatdate(localtime=False)
        if message_id is not None:
            msg["Message-ID"] = f"<{message_id}>"
        msg.set_content(body)
        raw = msg.as_bytes()
        if subject_header is not None:
            # Insert the Subject exactly as given (already encoded and folded as wanted).
            raw = b"Subject: " + subject_header.encode("ascii") + b"\r\n" + raw
        decoded = None
        if subject_header is not None:
            decoded = str(email.header.make_header(email.header.decode_header(subject_header)))
        sent = SentMessage(key, sender, list(recipients), [], {}, subject_header, decoded, message_id, None,
                           time.time())
        with smtplib.SMTP(SMTPD_ADDR, self.smtpd_port, local_hostname=CLIENT_HELO,
                          source_address=(CLIENT_ADDR, 0), timeout=30) as s:
            s.ehlo()
            code, reply = s.mail(sender)
            if code != 250:
                raise RuntimeError(f"MAIL FROM refused: {code} {reply!r}")
            for rcpt in recipients:
                code, reply = s.rcpt(rcpt)
                if code == 250:
                    sent.accepted.append(rcpt)
                else:
                    sent.refused[rcpt] = (code, reply.decode(errors="replace"))
            if sent.accepted:
                code, reply = s.data(raw)
                text = reply.decode(errors="replace")
                if code != 250:
                    raise RuntimeError(f"DATA refused: {code} {text}")
                m = re.search(r"queued as (\w+)", text)
                sent.queue_id = m.group(1) if m else None
            else:
                s.rset()
        return sent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _b64_subject(text: str) -> str:
    return email.header.Header(text, "utf-8").encode()


def send_scenarios(pf: PostfixInstance, tag: str) -> dict[str, SentMessage]:
    """The fixed set of test messages. `tag` makes Message-IDs unique per run."""
    out: dict[str, SentMessage] = {}

    def send(key, sender, rcpts, subject, mid=True, body="Hello from the Postfix end-to-end test.\n"):
        message_id = f"{key}.{tag}@client.test" if mid else None
        out[key] = pf.send(key, sender, rcpts, subject, message_id, body)

    # One message, recipients across all working sinks: two sent, one bounced, one greylisted.
    send("multi", f"alice@{SENDERS}",
         [f"ok1@{ACCEPT}", f"ok2@{ACCEPT}", f"nobody@{REJECT}", f"grey1@{GREY}"],
         "Quarterly report 2026")
    # A MIME encoded-word subject (single encoded word, not folded).
    send("mime", f"bob@{SENDERS}", [f"ok3@{ACCEPT}"], "=?utf-8?B?" +
         base64.b64encode("Grüße aus Köln ✓".encode()).decode() + "?=")
    # Hostile subject text that imitates log syntax and HTML.
    send("hostile", f"carol@{SENDERS}", [f"ok1@{ACCEPT}", f"grey2@{GREY}"],
         "status=bounced <script>alert(1)</script> queued as ABC123 to=<x@y>, relay=none")
    # A destination that refuses connections: deferred, then expired and returned to sender.
    send("down", f"dave@{SENDERS}", [f"lost@{DOWN}", f"ok4@{ACCEPT}"], "Destination is down")
    # No Message-ID from the client: Postfix's cleanup adds one (or logs message-id=<>).
    send("noid", f"erin@{SENDERS}", [f"ok5@{ACCEPT}"], "Message without a Message-ID", mid=False)
    # A long encoded subject that Python folds over several lines (Postfix logs the fold).
    send("folded", f"frank@{SENDERS}", [f"ok6@{ACCEPT}"],
         _b64_subject("Überweisung für Rechnung Nr. 4711 – bitte prüfen und freigeben, "
                      "Frist läuft am Freitag ab ✓✓✓"))
    # Relay denied as the only recipient: NOQUEUE reject at RCPT, no message at all.
    send("denied", f"mallory@{SENDERS}", [f"victim@{DENIED}"], "Relay attempt")
    # Relay denied after an accepted recipient of the same session: the reject has a queue ID.
    send("mixed", f"grace@{SENDERS}", [f"ok7@{ACCEPT}", f"victim2@{DENIED}"], "Half relayed")
    return out


@contextlib.contextmanager
def postfix_run(workdir: Path | None = None, keep: bool | None = None) -> Iterator[tuple[PostfixInstance, Sinks]]:
    """Sinks + a started private Postfix; stops both (and removes the workdir unless kept)."""
    reason = postfix_missing_reason()
    if reason:
        raise PostfixUnavailable(reason)
    own_dir = workdir is None
    if own_dir:
        workdir = Path(tempfile.mkdtemp(prefix="postfix-e2e-"))
        os.chmod(workdir, 0o755)  # daemons running as `postfix` must reach queue/ and data/
    if keep is None:
        keep = bool(os.environ.get("POSTFIX_E2E_KEEP"))
    sinks = Sinks()
    pf = None
    try:
        sinks.start()
        pf = PostfixInstance(workdir, sinks)
        pf.write_config()
        pf.start()
        yield pf, sinks
    finally:
        if pf is not None:
            pf.stop()
        sinks.stop()
        if own_dir and not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def run_all(maillog_copy: Path, keep: bool | None = None) -> RunResult:
    """Run every scenario once, copy the maillog to `maillog_copy`, return what happened."""
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    tag = f"{int(time.time())}.{os.getpid()}"
    with postfix_run(keep=keep) as (pf, sinks):
        started = datetime.now(timezone.utc)
        timings["start"] = time.monotonic() - t0
        messages = send_scenarios(pf, tag)
        timings["send"] = time.monotonic() - t0
        drained = pf.wait_drained()
        timings["drained"] = time.monotonic() - t0
        leftover = "" if drained else pf.queue_listing()
        pf.stop()
        timings["stopped"] = time.monotonic() - t0
        finished = datetime.now(timezone.utc)
        maillog_copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pf.maillog, maillog_copy)
        result = RunResult(pf.workdir, maillog_copy, started, finished, messages, sinks.snapshot(),
                           dict(sinks.ports),
                           {n: dict(h.rcpt_attempts) for n, h in sinks.handlers.items()}, drained, timings)
    if not drained:
        raise RuntimeError(f"queue not drained after {DRAIN_TIMEOUT_S}s:\n{leftover}")
    return result


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "postfix-e2e-maillog.log").resolve()
    res = run_all(out, keep=True)
    print(f"workdir {res.workdir}\nmaillog copied to {out}\ntimings {res.timings}")
    for key, m in res.messages.items():
        print(key, m.queue_id, m.accepted, m.refused, m.message_id)
    for d in res.deliveries:
        print(d)
