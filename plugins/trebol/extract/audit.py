"""The record of every batch: its rejected rows in ``raw._quarantine`` (reason, line or key,
original text, and the record's key when it could be read: ``record_key``, e.g.
``{"contact_id": "C123"}``) and one ``raw._load_audit`` row (rows read = rows loaded + rows
quarantined + rows suppressed, a constraint of the table; suppressed: the rows of people an
erasure request put on the suppression list, neither loaded nor kept).

Inputs: a batch's ``Staged`` and ``_checked``. Outputs: quarantine and audit rows, a
``BatchResult``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from trebol.extract.readers import Staged
from trebol.extract.sources import Source
from trebol.interval import Interval

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchResult:
    """What one batch contributed (the figures of its audit row)."""

    source: str
    batch_id: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    notes: str = ""
    rows_suppressed: int = 0


def clear_quarantine(conn: psycopg.Connection, source: Source, *batch_ids: str) -> None:
    """Remove the quarantine rows earlier loads of the batches left."""
    conn.execute("delete from raw._quarantine where source = %s and batch_id = any(%s)",
                 (source.name, list(batch_ids)))


def write_quarantine(conn: psycopg.Connection, source: Source, batch_id: str) -> int:
    """Replace the batch's quarantine rows with the rejected rows of ``_checked`` (those the
    reader could not read among them); how many."""
    clear_quarantine(conn, source, batch_id)
    return conn.execute(
        "insert into raw._quarantine (source, batch_id, line_number, reason, payload, record_key) "
        "select %s, %s, _line, _reason, _payload, _record_key from _checked where _reason is not null",
        (source.name, batch_id)).rowcount


def audit(conn: psycopg.Connection, source: Source, batch_id: str, location: str,
           day: date | None, staged: Staged, interval: Interval, quarantined: int,
           started_at: datetime, held_reason: str | None = None) -> BatchResult:
    """Record the batch (replacing an earlier record of the same batch); ``held_reason``: why
    nothing of it was applied (a held snapshot)."""
    loaded = staged.rows_read - quarantined - staged.suppressed
    notes = "; ".join(staged.notes)
    conn.execute("""
        insert into raw._load_audit (source, batch_id, location, file_day, checksum, interval_start,
            interval_end, rows_read, rows_loaded, rows_quarantined, rows_suppressed, notes,
            started_at, finished_at, held_reason)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp(), %s)
        on conflict (source, batch_id) do update set
            location = excluded.location, file_day = excluded.file_day,
            checksum = excluded.checksum, interval_start = excluded.interval_start,
            interval_end = excluded.interval_end, rows_read = excluded.rows_read,
            rows_loaded = excluded.rows_loaded, rows_quarantined = excluded.rows_quarantined,
            rows_suppressed = excluded.rows_suppressed, notes = excluded.notes,
            started_at = excluded.started_at, finished_at = excluded.finished_at,
            held_reason = excluded.held_reason""",
        (source.name, batch_id, location, day, staged.checksum, interval.start, interval.end,
         staged.rows_read, loaded, quarantined, staged.suppressed, notes or None, started_at,
         held_reason))
    if held_reason:
        log.error("%s %s: %s", source.name, batch_id, held_reason)
    for note in staged.notes:
        log.info("%s %s: %s", source.name, batch_id, note)
    return BatchResult(source.name, batch_id, staged.rows_read, loaded, quarantined, notes,
                       staged.suppressed)


def interval_days(interval: Interval, tz: ZoneInfo) -> list[date]:
    """The local days an interval covers (one for a nightly run)."""
    day, days = interval.start.astimezone(tz).date(), []
    while datetime(day.year, day.month, day.day, tzinfo=tz) < interval.end:
        days.append(day)
        day += timedelta(days=1)
    return days


def record_missing_files(conn: psycopg.Connection, source: Source, days_on_disk: frozenset[date],
                         interval: Interval, tz: ZoneInfo) -> list[date]:
    """For a source with ``cadence: daily``: record each day of the interval without a file in
    ``raw._missing_files`` (with the source's ``missing_file`` severity), and forget a day whose
    file is there now. The days missing."""
    if source.cadence != "daily":
        return []
    missing = [day for day in interval_days(interval, tz) if day not in days_on_disk]
    for day in interval_days(interval, tz):
        conn.execute("delete from raw._missing_files where source = %s and file_day = %s",
                     (source.name, day))
    for day in missing:
        expected = f"{source.path} dated {day.isoformat()}"
        conn.execute("""insert into raw._missing_files (source, file_day, interval_start, interval_end,
            severity, expected) values (%s, %s, %s, %s, %s, %s)""",
                     (source.name, day, interval.start, interval.end, source.missing_file, expected))
        log.log(logging.ERROR if source.missing_file == "error" else logging.WARNING,
                "%s: no file %s in the sources folder (a daily source): missing_file %s",
                source.name, expected, source.missing_file)
    return missing


def iter_results(results: Iterable[BatchResult]) -> Iterator[str]:
    """One readable line per batch, for task logs."""
    for r in results:
        yield (f"{r.source} {r.batch_id}: read {r.rows_read}, loaded {r.rows_loaded}, "
               f"quarantined {r.rows_quarantined}"
               + (f", suppressed {r.rows_suppressed}" if r.rows_suppressed else "")
               + (f" ({r.notes})" if r.notes else ""))
