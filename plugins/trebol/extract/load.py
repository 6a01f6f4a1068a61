"""Extract declared sources for one data interval and load them into ``raw``.

How a batch (one file, one snapshot or one query over the interval) travels:

1. read (``readers``): each record staged as text in ``_incoming``; a line that cannot be read
   (wrong field count, bytes that are not UTF-8, a NUL, invalid JSON or JSON PostgreSQL cannot
   hold, an over-long line) is staged with its reason, and a header that cannot be trusted (a
   column named twice, another delimiter) refuses the whole file, every line with that reason;
2. check (``checks``): one SQL rule set gives each row the first reason it is unusable (the
   reader's, a missing value, too long, not a number, not an ISO date, out of the plausible
   range, after the interval end, a source rule), its key when that can be read, and ranks
   duplicate keys;
3. apply (``apply``): good rows are merged into the raw table by primary key (newest version
   wins, whatever the load order) or, for snapshots, diffed into a history (a refused file is
   not applied: a snapshot whose every line was refused for its header says nothing about who
   is gone);
4. audit (``audit``): rejected rows to ``raw._quarantine`` with the reason, the location, the
   original text and the record's key; one ``raw._load_audit`` row per batch: rows read =
   loaded + quarantined.

No value in a file raises: whatever the data holds, the batch ends loaded or quarantined line
by line. Only what a retry can cure raises (the warehouse or a source unreachable, a lock), and a
configuration error (``SourceConfigError``), which no retry cures.

A clean CSV file of new keys takes a shortcut (``fast_path``): PostgreSQL parses the file and
applies the same rules in one insert; a file with any row the rules reject, or any key already
loaded, takes the path above, so both leave the same rows.

Everything a source does in a run happens in one transaction, so a crash (even kill -9 in the
middle of a COPY) leaves ``raw`` as it was, and a re-run, a backfill or days loaded out of order
leave it as one clean run would.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from trebol.extract import apply, checks, fast_path
from trebol.extract.audit import BatchResult, audit, clear_quarantine, write_quarantine
from trebol.extract.readers import (
    SourceConnector,
    SourceUnavailable,
    Staged,
    extraction_start,
    printable,
    sha256,
    stage_csv,
    stage_jsonl,
    stage_postgres,
)
from trebol.extract.sources import Source
from trebol.interval import Interval
from trebol.warehouse.ddl import ensure_raw_tables

DAY_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
log = logging.getLogger(__name__)

__all__ = ["BatchResult", "SourceConnector", "SourceUnavailable", "exports_for_day",
           "extract_and_load", "file_day", "plan_files"]


def file_day(path: Path) -> date | None:
    """The business day a file holds, from the YYYY-MM-DD in its name."""
    match = DAY_IN_NAME.search(path.name)
    return date.fromisoformat(match.group(1)) if match else None


def exports_for_day(sources: Iterable[Source], sources_dir: Path, day: date) -> list[Path]:
    """The export files of ``files`` and ``snapshot`` sources dated ``day`` under ``sources_dir``."""
    return sorted(path for source in sources if source.kind in ("files", "snapshot")
                  for path in sources_dir.glob(source.path or "") if file_day(path) == day)


def _day_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _batch_id(path: Path, sources_dir: Path) -> str:
    """The file's path under the sources folder (a name that is not UTF-8 shown as Latin-1)."""
    return printable(path.relative_to(sources_dir).as_posix())


def plan_files(conn: psycopg.Connection, source: Source, sources_dir: Path, interval: Interval,
               tz: ZoneInfo) -> tuple[list[Path], list[str]]:
    """Files this run loads for a ``files`` or ``snapshot`` source, oldest first, and notes.

    ``files``: every file dated before the interval end whose content is not in the audit yet
    (new, late or re-delivered with other content); loading a file again with the same content
    would change nothing, so it is skipped. ``snapshot``: every snapshot dated before the
    interval end that is newer than the newest one applied.
    """
    dated = sorted((day, path) for path in sources_dir.glob(source.path or "")
                   if (day := file_day(path)) is not None and _day_start(day, tz) < interval.end)
    loaded = {row[0]: (row[1], row[2]) for row in conn.execute(
        "select batch_id, checksum, file_day from raw._load_audit where source = %s",
        (source.name,)).fetchall()}
    notes: list[str] = []
    if source.kind == "snapshot":
        newest = max((day for _, day in loaded.values() if day is not None), default=None)
        chosen = []
        for day, path in dated:
            batch = _batch_id(path, sources_dir)
            if newest is not None and day <= newest:
                if batch not in loaded:
                    notes.append(f"{batch}: snapshot older than the applied one of {newest}; "
                                 "not applied")
                continue
            chosen.append(path)
        return chosen, notes
    chosen = [path for _, path in dated
              if _batch_id(path, sources_dir) not in loaded
              or loaded[_batch_id(path, sources_dir)][0] != sha256(path)]
    return chosen, notes


def _load_batch(conn: psycopg.Connection, source: Source, batch_id: str, location: str,
                day: date | None, interval: Interval, timezone: str,
                stage: Callable[[], Staged]) -> BatchResult:
    """Read, check, apply and audit one batch (inside the source's transaction)."""
    started_at = conn.execute("select clock_timestamp()").fetchone()[0]
    staged = stage()
    checks.check(conn, source, interval, staged, timezone)
    checks.apply_rules(conn, source)
    checks.rank_duplicates(conn, source)
    if staged.refused is not None:
        if source.kind == "snapshot":
            staged.notes.append("snapshot not applied: every line refused for the header")
    elif source.kind == "snapshot":
        staged.notes.append(apply.apply_snapshot(conn, source, batch_id, day or interval.end.date()))
    else:
        apply.merge(conn, source, batch_id)
    quarantined = write_quarantine(conn, source, batch_id)
    return audit(conn, source, batch_id, location, day, staged, interval, quarantined, started_at)


def extract_and_load(conn: psycopg.Connection, source: Source, sources_dir: Path, interval: Interval,
                     lookback_days: int, timezone: str,
                     connect: SourceConnector | None = None) -> list[BatchResult]:
    """Load every batch this interval needs for ``source``, all in one transaction."""
    tz = ZoneInfo(timezone)
    ensure_raw_tables(conn, [source])
    results: list[BatchResult] = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"trebol.load.{source.name}",))
        if source.kind == "postgres":
            if connect is None:
                raise SourceUnavailable(f"source {source.name}: no connector for {source.connection!r}")
            start = extraction_start(conn, source, interval, lookback_days)
            # the batch is the cursor range read: a re-run with the same range replaces its own
            # audit and quarantine rows, and never those of a wider earlier range
            batch_id = f"{start.isoformat() if start else '-infinity'}/{interval.end.isoformat()}"
            location = f"{source.connection}:{source.table or 'query'} where {source.cursor} in [{batch_id})"
            results.append(_load_batch(
                conn, source, batch_id, location, None, interval, timezone,
                lambda: stage_postgres(conn, source, interval, start, connect)))
            return results
        files, notes = plan_files(conn, source, sources_dir, interval, tz)
        for note in notes:
            log.warning("%s: %s", source.name, note)
        stage_file = stage_jsonl if source.format == "jsonl" else stage_csv
        for path in files:
            batch_id = _batch_id(path, sources_dir)
            started_at = conn.execute("select clock_timestamp()").fetchone()[0]
            clean = fast_path.load_clean_csv(conn, source, path, batch_id, interval, timezone)
            if clean is not None:
                clear_quarantine(conn, source, batch_id)
                results.append(audit(conn, source, batch_id, batch_id, file_day(path), clean,
                                     interval, 0, started_at))
                continue
            results.append(_load_batch(
                conn, source, batch_id, batch_id, file_day(path), interval, timezone,
                lambda path=path: stage_file(conn, source, path)))
    return results
