"""Message text -> typed events, one SQL pass, column-at-a-time.

Each daemon family's lines are recognised by fixed prefixes and taken apart with string
functions (instr/split_part), never by capture-group regexes over the whole line: those
run RE2's slow engine. Attacker-controlled parts (subjects, replies, HELO names) are cut
out by position from the end of the line's fixed structure, not by searching the text.
"""
from __future__ import annotations

import duckdb

# Short queue IDs are upper-case hex; long ones (enable_long_queue_ids) use a vowel-free
# alphabet with a 'z' between the time and inode parts.
_LONG = "[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]"
QUEUE_ID_RE = rf"^(?:[0-9A-F]{{6,20}}|{_LONG}{{6,}}z{_LONG}+|NOQUEUE): "

POSTSCREEN_VERDICTS = (
    "PASS NEW", "PASS OLD", "CONNECT from", "DISCONNECT", "DNSBL rank", "PREGREET", "HANGUP",
    "DATA without valid RCPT", "BDAT without valid RCPT", "COMMAND TIME LIMIT", "COMMAND LENGTH LIMIT",
    "BARE NEWLINE", "NON-SMTP COMMAND", "COMMAND PIPELINING", "COMMAND COUNT LIMIT", "DENYLISTED",
    "BLACKLISTED", "ALLOWLISTED", "WHITELISTED", "ALLOWLIST VETO", "WHITELIST VETO", "CACHE",
)
# Postfix programs whose lines carry no mail facts: known, deliberately not turned into events.
QUIET_DAEMONS = ("anvil", "master", "scache", "postfix-script", "postlogd", "tlsmgr", "verify",
                 "trivial-rewrite", "proxymap", "showq", "dnsblog", "tlsproxy", "sendmail", "postdrop",
                 "postqueue", "postmap", "postconf", "spawn", "flush", "oqmgr")
DELIVERY_DAEMONS = ("smtp", "lmtp", "local", "virtual", "pipe", "error", "discard", "relay", "retry", "qmgr")

MACROS = r"""
CREATE OR REPLACE MACRO pi_kv(s, k) AS split_part(substr(s, instr(s, ', ' || k || '=') + length(k) + 3), ', ', 1);
CREATE OR REPLACE MACRO pi_kvx(s, k) AS CASE WHEN instr(s, ', ' || k || '=') > 0 THEN pi_kv(s, k) END;
CREATE OR REPLACE MACRO pi_addr(s, k) AS
    CASE WHEN instr(s, k || '=<') > 0 THEN split_part(substr(s, instr(s, k || '=<') + length(k) + 2), '>', 1) END;
CREATE OR REPLACE MACRO pi_rfind(s, n) AS
    CASE WHEN instr(s, n) = 0 THEN 0 ELSE length(s) - instr(reverse(s), reverse(n)) - length(n) + 2 END;
CREATE OR REPLACE MACRO pi_host(s) AS nullif(split_part(s, '[', 1), '');
CREATE OR REPLACE MACRO pi_ip(s) AS CASE WHEN instr(s, '[') > 0 THEN split_part(split_part(s, '[', 2), ']', 1) END;
CREATE OR REPLACE MACRO pi_code(r) AS CASE WHEN regexp_matches(r, '^[245][0-9][0-9]([ -]|$)') THEN substr(r, 1, 3) END;
CREATE OR REPLACE MACRO pi_dsn(r) AS
    CASE WHEN regexp_matches(r, '^[245][0-9][0-9][ -]#?[245]\.[0-9]{1,3}\.[0-9]{1,3}')
         THEN ltrim(split_part(substr(r, 5), ' ', 1), '#')
         WHEN regexp_matches(r, '^[245]\.[0-9]{1,3}\.[0-9]{1,3}( |$)') THEN split_part(r, ' ', 1) END;
"""


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _starts_any(col: str, values: tuple[str, ...]) -> str:
    return " OR ".join(f"starts_with({col}, '{v}')" for v in values)


# kind: what the line says. Order matters: the first match wins.
_KIND = f"""
CASE
  WHEN problem IS NOT NULL THEN 'unparsed'
  WHEN host IS NULL THEN 'unparsed'
  WHEN ts IS NULL THEN 'unparsed'
  WHEN NOT is_postfix AND tag = 'opendkim' AND qid0 <> '' AND qid0 <> 'NOQUEUE' THEN
    CASE WHEN starts_with(body, 'DKIM-Signature field added') THEN 'dkim_sign'
         WHEN starts_with(body, 'DKIM-Signature field skipped') THEN 'dkim_skip'
         ELSE 'dkim_verify' END
  WHEN NOT is_postfix THEN 'other_program'
  WHEN qid0 = 'NOQUEUE' THEN
    CASE WHEN regexp_matches(body, '^[a-z-]+: [A-Z-]+ from [^ ]*\\[') THEN 'reject' ELSE 'unknown' END
  WHEN qid0 <> '' THEN
    CASE WHEN starts_with(body, 'to=<') AND instr(body, ', status=') > 0 THEN 'delivery'
         WHEN body = 'removed' THEN 'removed'
         WHEN starts_with(body, 'from=<') AND instr(body, ', status=expired') > 0 THEN 'expired'
         WHEN starts_with(body, 'from=<') AND instr(body, ', nrcpt=') > 0 THEN 'queued'
         WHEN starts_with(body, 'client=') THEN 'client'
         WHEN starts_with(body, 'message-id=') THEN 'message_id'
         WHEN starts_with(body, 'resent-message-id=') THEN 'resent_message_id'
         WHEN starts_with(body, 'uid=') AND instr(body, ' from=<') > 0 THEN 'pickup'
         WHEN daemon = 'bounce' AND instr(body, ' notification: ') > 0 THEN 'notify'
         WHEN daemon = 'cleanup' AND regexp_matches(body, '^[a-z-]+: (header|body) ') THEN 'header_action'
         WHEN regexp_matches(body, '^[a-z-]+: [A-Z-]+ from [^ ]*\\[') THEN 'reject'
         WHEN body = 'placed on hold' THEN 'hold'
         WHEN body = 'released from hold' THEN 'release'
         WHEN body = 'requeued' THEN 'requeue'
         WHEN starts_with(body, 'host ') AND instr(body, ' said: ') > 0 THEN 'smtp_reply'
         WHEN starts_with(body, 'lost connection with ') OR starts_with(body, 'conversation with ') THEN 'smtp_reply'
         WHEN starts_with(body, 'enabling PIX workarounds') THEN 'smtp_reply'
         WHEN starts_with(body, 'warning: ') OR starts_with(body, 'error: ') THEN 'warning'
         ELSE 'unknown' END
  WHEN daemon IN {_in(QUIET_DAEMONS)} THEN 'noise'
  WHEN daemon = 'postscreen' AND ({_starts_any('body', POSTSCREEN_VERDICTS)}) THEN 'postscreen'
  WHEN starts_with(body, 'connect from ') THEN 'connect'
  WHEN starts_with(body, 'disconnect from ') THEN 'disconnect'
  WHEN starts_with(body, 'lost connection after ') OR starts_with(body, 'timeout after ') THEN 'lost_connection'
  WHEN instr(body, ' TLS connection established ') > 0 THEN 'tls'
  WHEN starts_with(body, 'connect to ') THEN 'connect_failed'
  WHEN starts_with(body, 'warning: ') AND instr(body, ' authentication failed') > 0 AND instr(body, ': SASL ') > 0 THEN 'sasl_failed'
  WHEN starts_with(body, 'warning: hostname ') AND instr(body, ' does not resolve to address ') > 0 THEN 'fcrdns_failed'
  WHEN regexp_matches(body, '^(warning|error|fatal|panic): ') THEN 'warning'
  WHEN starts_with(body, 'statistics: ') OR starts_with(body, 'improper command pipelining')
       OR starts_with(body, 'Anonymous TLS') OR starts_with(body, 'SSL_accept error')
       OR starts_with(body, 'too many errors') OR starts_with(body, 'NOQUEUE: ') THEN 'noise'
  ELSE 'unknown'
END
"""

# Kinds whose line belongs to a queue ID's message and is kept with it.
MESSAGE_KINDS = ("delivery", "removed", "expired", "queued", "client", "message_id", "resent_message_id",
                 "pickup", "notify", "header_action", "reject", "hold", "release", "requeue", "smtp_reply",
                 "warning", "unknown", "dkim_sign", "dkim_skip", "dkim_verify")
# Kinds counted as deliberately skipped rather than unparsed.
SKIPPED_KINDS = ("other_program", "noise")


def _action_head_tail(kind: str) -> str:
    """Lines shaped `ACTION: HEAD; from=<..> to=<..> proto=.. helo=<..>[: detail]` (rejects and
    header/body checks), cut at the last '; from=<' (or '; proto=' when there is no sender):
    HEAD may hold attacker text that imitates the tail, the real tail is always last."""
    return f"""
        SELECT *, substr(body, length(action) + 3,
                         CASE WHEN tail_at > 0 THEN tail_at - length(action) - 3 ELSE length(body) END) AS head,
               CASE WHEN tail_at > 0 THEN substr(body, tail_at + 2) END AS tail
        FROM (SELECT *, split_part(body, ': ', 1) AS action,
                     coalesce(nullif(pi_rfind(body, '; from=<'), 0), pi_rfind(body, '; proto=')) AS tail_at
              FROM ev1 JOIN (SELECT seq, line FROM batch_in) USING (seq) WHERE kind = '{kind}')"""


# Columns every event has; the families below add their own.
_COMMON = "seq, ts, host, instance, service, daemon, pid, qid, kind"

# One SELECT per family of lines: each computes only its own fields on only its own rows
# (a CASE per column over every row costs more than all the string work together).
FAMILIES: dict[str, str] = {
    "delivery": f"""
        SELECT {_COMMON}, rcpt, orig_rcpt, relay, delay, dsn, status, response, link_kind, child_qid,
               pi_code(split_part(response, 'said: ', -1)) AS code,
               TRY_CAST(delays[1] AS DOUBLE) AS delay_before_queue, TRY_CAST(delays[2] AS DOUBLE) AS delay_in_queue,
               TRY_CAST(delays[3] AS DOUBLE) AS delay_connect, TRY_CAST(delays[4] AS DOUBLE) AS delay_transmit
        FROM (
            SELECT *, split_part(substr(body, 5), '>, ', 1) AS rcpt,
                CASE WHEN instr(pre, ', orig_to=<') > 0
                     THEN split_part(substr(pre, instr(pre, ', orig_to=<') + 11), '>, ', 1) END AS orig_rcpt,
                pi_kvx(pre, 'relay') AS relay, TRY_CAST(pi_kvx(pre, 'delay') AS DOUBLE) AS delay,
                string_split(pi_kvx(pre, 'delays'), '/') AS delays, pi_kvx(pre, 'dsn') AS dsn,
                pi_kvx(pre, 'status') AS status,
                CASE WHEN ends_with(body, ')') AND length(body) > length(pre) + 2
                     THEN substr(body, length(pre) + 3, length(body) - length(pre) - 3) END AS response,
                CASE WHEN regexp_matches(body, ' queued as [0-9A-Za-z]{{6,20}}\\)$') THEN 'queued as' END AS link_kind,
                CASE WHEN regexp_matches(body, ' queued as [0-9A-Za-z]{{6,20}}\\)$')
                     THEN rtrim(split_part(body, ' queued as ', -1), ')') END AS child_qid
            FROM (SELECT *, substr(body, 1, instr(body || ' (', ' (') - 1) AS pre FROM ev1 WHERE kind = 'delivery')
        )""",
    "queue": f"""
        SELECT {_COMMON}, pi_addr(body, 'from') AS sender,
               CASE WHEN kind = 'expired' THEN 'expired' END AS status,
               TRY_CAST(pi_kvx(body, 'size') AS BIGINT) AS size,
               TRY_CAST(split_part(pi_kvx(body, 'nrcpt'), ' ', 1) AS INTEGER) AS nrcpt
        FROM ev1 WHERE kind IN ('queued', 'expired')""",
    "pickup": f"SELECT {_COMMON}, pi_addr(body, ' from') AS sender, body AS text FROM ev1 WHERE kind = 'pickup'",
    "client": f"""
        SELECT {_COMMON}, pi_host(c) AS client_host, pi_ip(c) AS client_ip,
               pi_kvx(v, 'sasl_method') AS sasl_method, pi_kvx(v, 'sasl_username') AS sasl_user
        FROM (SELECT *, substr(body, 8) AS v, split_part(substr(body, 8), ', ', 1) AS c FROM ev1 WHERE kind = 'client')""",
    "message_id": f"""
        SELECT {_COMMON}, regexp_replace(substr(body, instr(body, '=') + 1), '^<(.*)>$', '\\1') AS message_id
        FROM ev1 WHERE kind IN ('message_id', 'resent_message_id')""",
    "notify": f"""
        SELECT {_COMMON}, split_part(body, ' notification: ', 1) AS link_kind,
               split_part(body, ' notification: ', 2) AS child_qid
        FROM ev1 WHERE kind = 'notify'""",
    # NOQUEUE/QID: reject: RCPT from host[ip]: 554 5.7.1 text; from=<s> to=<r> proto=ESMTP helo=<h>
    "reject": f"""
        SELECT {_COMMON}, line, action, stage, pi_host(c) AS client_host, pi_ip(c) AS client_ip, reply AS response,
               pi_code(reply) AS code, pi_dsn(reply) AS dsn, pi_addr(tail, 'from') AS sender,
               pi_addr(tail, ' to') AS rcpt, pi_addr(tail, 'helo') AS helo,
               rtrim(split_part(split_part(tail, 'proto=', 2), ' ', 1), ',') AS proto
        FROM (
            SELECT *, split_part(head, ' ', 1) AS stage, split_part(split_part(head, ' from ', 2), ': ', 1) AS c,
                   substr(head, instr(head, ' from ') + length(split_part(split_part(head, ' from ', 2), ': ', 1)) + 8) AS reply
            FROM ({_action_head_tail('reject')})
        )""",
    # QID: info: header Subject: text from host[ip]; from=<s> to=<r> proto=ESMTP helo=<h>[: detail]
    "header_action": f"""
        SELECT {_COMMON}, line, action, stage, check_text, pi_host(c) AS client_host, pi_ip(c) AS client_ip,
               pi_addr(tail, 'from') AS sender, pi_addr(tail, ' to') AS rcpt, pi_addr(tail, 'helo') AS helo,
               CASE WHEN instr(tail, ' helo=<') > 0
                    THEN nullif(ltrim(substr(tail, instr(tail, ' helo=<') + 8 + length(pi_addr(tail, 'helo'))), ': '), '')
               END AS response,
               pi_dsn(coalesce(nullif(ltrim(substr(tail, instr(tail, ' helo=<') + 8 + length(pi_addr(tail, 'helo'))), ': '), ''), ''))
                   AS dsn
        FROM (
            SELECT *, split_part(head, ' ', 1) AS stage,
                   substr(head, length(split_part(head, ' ', 1)) + 2,
                          greatest(pi_rfind(head, ' from ') - length(split_part(head, ' ', 1)) - 2, 0)) AS check_text,
                   substr(head, pi_rfind(head, ' from ') + 6) AS c
            FROM ({_action_head_tail('header_action')})
        )""",
    "tls": f"""
        SELECT {_COMMON}, split_part(body, ' ', 1) AS tls_trust, split_part(body, ' ', 5) AS tls_direction,
               rtrim(split_part(body, ' ', 6), ':') AS peer, split_part(body, ' ', 7) AS tls_protocol,
               split_part(body, ' ', 10) AS tls_cipher,
               TRY_CAST(ltrim(split_part(split_part(body, ' ', 11), '/', 1), '(') AS INTEGER) AS tls_bits
        FROM ev1 WHERE kind = 'tls'""",
    "connection": f"""
        SELECT {_COMMON}, pi_host(c) AS client_host, pi_ip(c) AS client_ip, stage, text
        FROM (SELECT *, split_part(split_part(body, ' from ', 2), ' ', 1) AS c,
                     CASE WHEN kind = 'lost_connection' THEN split_part(split_part(body, ' after ', 2), ' ', 1) END AS stage,
                     CASE WHEN kind <> 'connect' THEN body END AS text
              FROM ev1 WHERE kind IN ('connect', 'disconnect', 'lost_connection'))""",
    "connect_failed": f"""
        SELECT {_COMMON}, split_part(substr(body, 12), ': ', 1) AS peer, body AS text
        FROM ev1 WHERE kind = 'connect_failed'""",
    "sasl_failed": f"""
        SELECT {_COMMON}, pi_host(c) AS client_host, pi_ip(c) AS client_ip,
               split_part(split_part(body, ': SASL ', 2), ' ', 1) AS sasl_method, body AS text
        FROM (SELECT *, split_part(substr(body, 10), ': ', 1) AS c FROM ev1 WHERE kind = 'sasl_failed')""",
    "postscreen": f"""
        SELECT {_COMMON}, split_part(split_part(body, '[', 2), ']', 1) AS client_ip,
               regexp_extract(body, '^({"|".join(POSTSCREEN_VERDICTS)})') AS verdict
        FROM ev1 WHERE kind = 'postscreen'""",
    "dkim": f"""
        SELECT {_COMMON},
               CASE WHEN kind = 'dkim_sign' THEN split_part(split_part(body, 'd=', 2), ')', 1) END AS dkim_domain,
               CASE WHEN kind = 'dkim_sign' THEN split_part(split_part(body, '(s=', 2), ',', 1) END AS dkim_selector,
               CASE WHEN kind <> 'dkim_verify' THEN NULL
                    WHEN starts_with(body, 'DKIM verification successful') THEN 'pass'
                    WHEN starts_with(body, 'no signature data') OR starts_with(body, 'no signing table match') THEN 'none'
                    ELSE 'fail' END AS dkim_result,
               body AS text
        FROM ev1 WHERE kind IN ('dkim_sign', 'dkim_skip', 'dkim_verify')""",
    "info": f"""
        SELECT {_COMMON}, body AS text FROM ev1 WHERE kind IN ('smtp_reply', 'hold', 'release', 'requeue')""",
    "not_parsed": f"""
        SELECT {_COMMON}, line, CASE WHEN kind IN ('warning', 'unknown') THEN body END AS text,
               CASE WHEN kind = 'unparsed' THEN coalesce(problem, CASE WHEN host IS NULL THEN 'bad_header' ELSE 'bad_timestamp' END)
                    WHEN kind = 'unknown' THEN 'unknown_' || CASE WHEN daemon IN {_in(DELIVERY_DAEMONS + ('smtpd', 'cleanup', 'bounce', 'pickup', 'postscreen', 'postsuper'))} THEN daemon ELSE 'daemon' END
                    WHEN kind = 'warning' THEN split_part(body, ':', 1)
                    ELSE kind END AS reason
        FROM ev1 JOIN (SELECT seq, line FROM batch_in) USING (seq)
        WHERE kind IN ('unparsed', 'unknown', 'warning', 'other_program', 'noise')""",
}


def parse_bodies(con: duckdb.DuckDBPyConnection, headers: str) -> None:
    """headers -> temp table ev1 (every line: kind and common columns) and one temp table
    ev_<family> per family with that family's fields (no wide union: padding it costs more
    than the parsing)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE ev1 AS
        WITH a AS (
            SELECT *, regexp_extract(msg, '{QUEUE_ID_RE}') AS q0, string_split(tag, '/') AS tp,
                   starts_with(tag, 'postfix') AND instr(tag, '/') > 0 AS is_postfix
            FROM ({headers}) AS headers
        ), b AS (
            SELECT seq, problem, ts, host, pid, is_postfix, tag,
                   CASE WHEN is_postfix THEN tp[1] END AS instance,
                   CASE WHEN is_postfix THEN tp[-1] ELSE tag END AS daemon,
                   CASE WHEN is_postfix AND len(tp) > 2 THEN tp[2] WHEN is_postfix THEN tp[-1] END AS service,
                   CASE WHEN q0 <> '' THEN substr(q0, 1, length(q0) - 2) ELSE '' END AS qid0,
                   CASE WHEN q0 <> '' THEN substr(msg, length(q0) + 1) ELSE msg END AS body
            FROM a
        )
        SELECT * EXCLUDE (qid0, is_postfix, tag), nullif(nullif(qid0, ''), 'NOQUEUE') AS qid, {_KIND} AS kind FROM b
    """)
    for family, sql in FAMILIES.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE ev_{family} AS {sql}")
