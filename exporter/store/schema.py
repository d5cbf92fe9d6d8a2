"""The DuckDB schema: what the store keeps, and the view that the read side searches.

All times are UTC `TIMESTAMP`s. `seq` numbers every line ever ingested, in order; it orders
events where timestamps tie and names a line for the trace.
"""
from __future__ import annotations

SCHEMA_VERSION = 5   # 2: delivery_records became a table (was a view); 3: its reason column;
                     # 4: made from the attempts (the recipients table went); 5: rk an integer

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR, value VARCHAR);
CREATE TABLE IF NOT EXISTS sources (
    src_id INTEGER, name VARCHAR, fingerprint BLOB, offset_bytes BIGINT, lines BIGINT,
    clock_year INTEGER, clock_month INTEGER, updated_at TIMESTAMP);
-- one row per message instance: a queue ID from its first line until `removed` (or expiry)
CREATE TABLE IF NOT EXISTS messages (
    msg_id BIGINT, host VARCHAR, queue_id VARCHAR, instance VARCHAR,
    first_ts TIMESTAMP, last_ts TIMESTAMP, first_seq BIGINT, last_seq BIGINT,
    origin VARCHAR,                 -- smtpd service (smtpd, submission, ...), 'pickup', or NULL (Postfix-made)
    client_host VARCHAR, client_ip VARCHAR, sasl_method VARCHAR, sasl_user VARCHAR,
    message_id VARCHAR, subject VARCHAR, sender VARCHAR, size BIGINT, nrcpt INTEGER, queued_ts TIMESTAMP,
    removed BOOLEAN, expired_ts TIMESTAMP, held_ts TIMESTAMP,
    action VARCHAR, action_ts TIMESTAMP,   -- final header/body-check action: reject, discard, hold
    dkim_domain VARCHAR, dkim_selector VARCHAR, dkim_result VARCHAR,
    open BOOLEAN);
-- every delivery line
CREATE TABLE IF NOT EXISTS attempts (
    msg_id BIGINT, seq BIGINT, ts TIMESTAMP, recipient VARCHAR, orig_recipient VARCHAR,
    transport VARCHAR, instance VARCHAR, relay VARCHAR, delay DOUBLE,
    delay_before_queue DOUBLE, delay_in_queue DOUBLE, delay_connect DOUBLE, delay_transmit DOUBLE,
    dsn VARCHAR, status VARCHAR, response VARCHAR, code VARCHAR,
    tls_protocol VARCHAR, tls_trust VARCHAR, tls_cipher VARCHAR);
-- SMTP-time rejects (NOQUEUE or with a queue ID), access-map actions, and header/body-check rejects
CREATE TABLE IF NOT EXISTS rejects (
    seq BIGINT, ts TIMESTAMP, host VARCHAR, queue_id VARCHAR, msg_id BIGINT, daemon VARCHAR,
    action VARCHAR, stage VARCHAR, client_host VARCHAR, client_ip VARCHAR, code VARCHAR, dsn VARCHAR,
    response VARCHAR, sender VARCHAR, recipient VARCHAR, proto VARCHAR, helo VARCHAR, line VARCHAR USING COMPRESSION zstd);
-- parent -> child queue IDs: bounce/delay/success notices and content-filter re-injection
CREATE TABLE IF NOT EXISTS links (
    parent_msg_id BIGINT, child_msg_id BIGINT, host VARCHAR, child_queue_id VARCHAR, kind VARCHAR, ts TIMESTAMP);
-- the raw lines of each message
CREATE TABLE IF NOT EXISTS lines (msg_id BIGINT, seq BIGINT, ts TIMESTAMP, line VARCHAR USING COMPRESSION zstd);
-- lines not parsed, kept raw
CREATE TABLE IF NOT EXISTS unparsed (seq BIGINT, ts TIMESTAMP, host VARCHAR, source VARCHAR, reason VARCHAR, line VARCHAR USING COMPRESSION zstd);
-- counts per day: line kinds, skipped and unparsed reasons, postscreen verdicts, correlator evictions
CREATE TABLE IF NOT EXISTS line_counts (day DATE, host VARCHAR, category VARCHAR, name VARCHAR, n BIGINT);
-- the latest TLS handshake per process, for delivery lines in the next batch
CREATE TABLE IF NOT EXISTS pid_tls (
    host VARCHAR, pid INTEGER, seq BIGINT, ts TIMESTAMP, peer VARCHAR, tls_direction VARCHAR,
    tls_protocol VARCHAR, tls_trust VARCHAR, tls_cipher VARCHAR);
-- a trace starts from a queue ID: an index lookup instead of scanning every message's ID
-- (~60 ms on 5M messages; ~10 ms more per 160k-line batch to keep up)
CREATE INDEX IF NOT EXISTS messages_queue_id ON messages (queue_id);
"""

# One row per recipient delivery: the public record (exporter.records.DELIVERY_RECORD_KEYS)
# plus msg_id, a few columns the read side filters on, and `rk`, a key unique per row that
# orders rows with equal times (cursor paging): the seq of the record's first line (the
# recipient's first attempt, the reject, or a pending instance's first line). An integer: a
# string key cost ~10% of the records' insert. A table, not a view: the read side searches
# and aggregates it without joins (exporter/store/records.py keeps it in step with the facts,
# batch by batch, from a transaction of its own).
RECORD_COLUMNS = """
    time TIMESTAMP, host VARCHAR, queue_id VARCHAR, message_id VARCHAR, sender VARCHAR, recipient VARCHAR,
    orig_recipient VARCHAR, subject VARCHAR, status VARCHAR, dsn VARCHAR, relay VARCHAR, delay_seconds DOUBLE,
    attempts INTEGER, response VARCHAR, client_ip VARCHAR, tls VARCHAR,
    msg_id BIGINT, transport VARCHAR, client_host VARCHAR, sasl_user VARCHAR, size BIGINT, rk BIGINT,
    rcpt_domain VARCHAR, sender_domain VARCHAR,
    reason VARCHAR"""  # reason: category of a deferral, bounce or reject (exporter/reasons.py)

RECORDS_TABLE = f"CREATE TABLE IF NOT EXISTS delivery_records ({RECORD_COLUMNS});"
