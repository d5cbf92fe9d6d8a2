"""Syslog header -> time, host, tag, pid; column-at-a-time in DuckDB.

One DFA-only regex (no capture groups: RE2's capture engine is ~20x slower) finds the
header; cheap string functions take it apart. Year-less BSD times get their year from a
per-source clock: the first line's year comes from the file's mtime (or --year), a Dec->Jan
step adds one, a Jan->Dec step back takes it away.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np

# BSD `Nov  5 12:00:00` (space- or zero-padded or unpadded day), RFC 3339 with fraction and
# offset, then host, tag and optional [pid], then ': '.
HEADER_RE = (
    r"^(?:[A-Z][a-z]{2} [ 0-9]?[0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)"
    r" [^ ]+ [^ \[\]:]+(?:\[[0-9]+\])?: "
)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass
class Clock:
    """Per-source state for year-less timestamps, carried from batch to batch."""
    anchor: datetime          # the file's mtime (or now): the first line is not after it
    year: int | None = None   # year of the last year-less line seen
    month: int | None = None  # its month

    def start_year(self, month: int, day: int) -> int:
        if self.year is not None:
            return self.year
        later = (month, day) > (self.anchor.month, self.anchor.day)
        return self.anchor.year - 1 if later else self.anchor.year


def local_zone_name() -> str:
    """The machine's IANA zone name, for 'localtime'."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        return tz
    try:
        target = os.readlink("/etc/localtime")
        return target.split("zoneinfo/", 1)[1]
    except (OSError, IndexError):
        pass
    try:
        name = Path("/etc/timezone").read_text().strip()
        return name or "UTC"
    except OSError:
        return "UTC"


def header_years(con: duckdb.DuckDBPyConnection, table: str, clock: Clock, year: int | None) -> np.ndarray:
    """The year of each line of `table(line)`, worked out before parsing: year-less lines start
    with the month name."""
    md = con.sql(f"""SELECT list_position({MONTHS!r}, substr(line, 1, 3))::TINYINT AS mon,
                            TRY_CAST(trim(substr(line, 5, 2)) AS TINYINT) AS mday FROM {table}""").to_arrow_table()
    return _years(md.column(0).to_numpy(zero_copy_only=False), md.column(1).to_numpy(zero_copy_only=False),
                  clock, year)


def header_sql(zone: str) -> str:
    """SELECT over batch_in(seq, line, problem, yr) -> seq, line, problem, host, msg, ts, tag, pid.

    The header's parts are cut out by position (no lists): after the time comes
    'host tag[pid]: ', and neither host nor tag holds a space."""
    to_utc = "t" if zone == "UTC" else f"timezone('{zone}', t)::TIMESTAMP"
    return f"""
        WITH ha AS (
            SELECT seq, line, problem, yr,
                   CASE WHEN problem IS NULL THEN regexp_extract(line, '{HEADER_RE}') ELSE '' END AS h
            FROM batch_in
        ), hb AS (
            SELECT *, h <> '' AND substr(h, 4, 1) <> ' ' AS iso,
                   CASE WHEN h = '' THEN NULL
                        WHEN substr(h, 4, 1) <> ' ' THEN substr(h, instr(h, ' ') + 1)
                        ELSE substr(h, instr(h, ':') + 7) END AS rest
            FROM ha
        ), hc AS (
            SELECT seq, line, problem, substr(line, length(h) + 1) AS msg, iso,
                   left(rest, instr(rest, ' ') - 1) AS host,
                   substr(rest, instr(rest, ' ') + 1) AS tp2,
                   CASE WHEN h = '' THEN NULL
                        WHEN iso THEN TRY_CAST(left(h, instr(h, ' ') - 1) AS TIMESTAMPTZ)::TIMESTAMP
                        ELSE try(make_date(yr, list_position({MONTHS!r}, left(h, 3)), TRY_CAST(trim(substr(h, 5, 2)) AS INTEGER))
                                 + TRY_CAST(substr(h, instr(h, ':') - 2, 8) AS TIME)) END AS t
            FROM hb
        )
        SELECT seq, line, problem, host, msg,
               CASE WHEN iso THEN t ELSE {to_utc} END AS ts,
               CASE WHEN instr(tp2, '[') > 0 THEN left(tp2, instr(tp2, '[') - 1) ELSE left(tp2, length(tp2) - 2) END AS tag,
               CASE WHEN instr(tp2, '[') > 0
                    THEN TRY_CAST(substr(tp2, instr(tp2, '[') + 1, instr(tp2, ']') - instr(tp2, '[') - 1) AS INTEGER) END AS pid
        FROM hc
    """


def _years(mon: np.ndarray, mday: np.ndarray, clock: Clock, year: int | None) -> np.ndarray:
    """Year per line: a Dec->Jan step adds one, a step back from Jan to Dec takes it away."""
    known = ~np.isnan(mon) if mon.dtype.kind == "f" else np.ones(len(mon), bool)
    idx = np.flatnonzero(known)
    years = np.full(len(mon), clock.year or clock.anchor.year, np.int16)
    if len(idx) == 0:
        return years
    months = mon[idx].astype(np.int16)
    if clock.year is None:
        day = mday[idx[0]]
        first_day = 1 if day != day else int(day)  # NaN when the day did not parse
        clock.year = year if year is not None else clock.start_year(int(months[0]), first_day)
        clock.month = int(months[0])
    prev = np.empty_like(months)
    prev[0] = clock.month
    prev[1:] = months[:-1]
    step = np.where(prev - months >= 6, 1, np.where(months - prev >= 6, -1, 0))
    yr = clock.year + np.cumsum(step)
    years[idx] = yr
    clock.year, clock.month = int(yr[-1]), int(months[-1])
    return years


def count_backwards(con: duckdb.DuckDBPyConnection) -> int:
    """How many lines of ev1 went back in time by more than a minute (counted, still parsed)."""
    ts = con.sql("SELECT epoch_us(ts) FROM ev1 ORDER BY seq").to_arrow_table().column(0)
    values = ts.to_numpy(zero_copy_only=False)
    if values.dtype.kind == "f":
        values = values[~np.isnan(values)].astype(np.int64)
    if len(values) < 2:
        return 0
    running_max = np.maximum.accumulate(values)
    return int(np.count_nonzero(values[1:] < running_max[:-1] - 60_000_000))
