"""The delivery_records table stays equal to the facts it is built from: batch by batch, after
a prune, and when a store written before it took its present shape is upgraded."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from conftest import DATA, run_cli, search_json
from exporter.generator import generate
from exporter.store import records
from exporter.store.schema import SCHEMA_VERSION

LOGS = [str(DATA / "golden" / n) for n in ("bounces.log", "retries.log", "rejects.log", "content_filter.log")]


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return sorted(con.execute(sql).fetchall(), key=repr)


def test_records_equal_a_fresh_build_from_the_facts(db: Path, tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    generate(str(log), 40_000, seed=3, hosts=("mx1", "mx2"))
    # 1 MB batches: messages span batches, so their records are replaced as they change
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", "--batch-mb", "1", str(log), *LOGS)
    con = duckdb.connect(str(db))
    stored = _rows(con, "SELECT * FROM delivery_records")
    assert len(stored) > 3000
    assert {r[8] for r in stored} >= {"sent", "deferred", "bounced", "expired", "rejected"}  # status
    # a rebuild makes them all at once, a range of instances at a time
    records.rebuild(con, ids_per_step=500)
    assert _rows(con, "SELECT * FROM delivery_records") == stored
    con.close()


# How older versions left a store, from one this version wrote
OLD_FORMS = {
    # the records' row key a string
    "4": ["ALTER TABLE delivery_records ALTER rk TYPE VARCHAR", "UPDATE delivery_records SET rk = 'r' || rk"],
    # a recipients table beside the records, which a crash could leave behind the facts (they
    # were refreshed after each batch, in a transaction of their own)
    "3": ["CREATE TABLE recipients (msg_id BIGINT, recipient VARCHAR)",
          "DELETE FROM delivery_records WHERE msg_id % 2 = 0"],
    # the records a view
    "1": ["CREATE TABLE old_records AS SELECT * EXCLUDE (rcpt_domain, sender_domain, reason) FROM delivery_records",
          "DROP TABLE delivery_records", "CREATE VIEW delivery_records AS SELECT * FROM old_records"],
}


@pytest.mark.parametrize("version", OLD_FORMS)
def test_an_old_store_is_upgraded_on_open(db: Path, version: str) -> None:
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", *LOGS)
    before = search_json(db)
    con = duckdb.connect(str(db))
    for statement in OLD_FORMS[version]:
        con.execute(statement)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [version])
    con.close()
    proc = run_cli("search", "--db", str(db), check=False)
    assert proc.returncode != 0 and "open it once" in proc.stderr.decode()
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", *LOGS)  # nothing new: upgrades
    assert search_json(db) == before
    con = duckdb.connect(str(db), read_only=True)
    assert not con.execute("SELECT * FROM duckdb_tables() WHERE table_name = 'recipients'").fetchall()
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [(str(SCHEMA_VERSION),)]
    assert con.execute("SELECT data_type FROM information_schema.columns "
                       "WHERE table_name = 'delivery_records' AND column_name = 'rk'").fetchall() == [("BIGINT",)]
    con.close()


def test_prune_drops_the_records_of_what_it_drops(db: Path) -> None:
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", *LOGS)
    assert search_json(db)
    run_cli("prune", "--db", str(db), "--older-than-days", "0")
    con = duckdb.connect(str(db), read_only=True)
    left = con.execute("SELECT count(*) FROM delivery_records WHERE msg_id NOT IN (SELECT msg_id FROM messages)"
                       " OR (msg_id IS NULL AND time < now()::TIMESTAMP)").fetchall()[0][0]
    con.close()
    assert left == 0


def test_records_a_crash_left_behind_are_brought_in_on_the_next_open(db: Path) -> None:
    # A batch's records commit after the batch, from a thread of their own. Crashing between
    # the two leaves the facts ahead of the records, and records_seq where the records stop.
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", *LOGS)
    before = search_json(db)
    con = duckdb.connect(str(db))
    (next_seq,) = con.execute("SELECT value::BIGINT FROM meta WHERE key = 'next_seq'").fetchall()[0]
    assert con.execute("SELECT value::BIGINT FROM meta WHERE key = 'records_seq'").fetchall()[0][0] == next_seq
    since = next_seq // 2
    con.execute("""DELETE FROM delivery_records WHERE msg_id IN (SELECT msg_id FROM messages WHERE last_seq >= ?)
                   OR (msg_id IS NULL AND rk IN (SELECT seq FROM rejects WHERE seq >= ?))""", [since, since])
    con.execute("UPDATE meta SET value = ? WHERE key = 'records_seq'", [str(since)])
    con.close()
    assert len(search_json(db)) < len(before)
    run_cli("ingest", "--db", str(db), "--year", "2026", "--timezone", "UTC", *LOGS)  # nothing new: catches up
    assert search_json(db) == before
