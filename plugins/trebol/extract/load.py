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
3. apply (``apply``): good rows are merged into the raw table by primary key or, for a source
   with a ``version_column``, by primary key and version: raw keeps every version, dated by
   when a run begins to load it (``_available_from``: the start of a file's day, a database
   row's cursor), so that dbt can read each record as of any date, whatever the load order;
   for snapshots, diffed into a history (``snapshots``; a refused file is not applied: a
   snapshot whose every line was refused for its header says nothing about who is gone);
4. audit (``audit``): rejected rows to ``raw._quarantine`` with the reason, the location, the
   original text and the record's key; one ``raw._load_audit`` row per batch: rows read =
   loaded + quarantined + suppressed.

Between reading and checking, the rows of people an erasure request put on the suppression list
are taken out of the batch (``trebol.erasure.suppression``): counted as suppressed, neither
loaded nor quarantined.

No value in a file raises: whatever the data holds, the batch ends loaded or quarantined line
by line. Only what a retry can cure raises (the warehouse or a source unreachable, a lock), and a
configuration error (``SourceConfigError``), which no retry cures.

A run's files take a shortcut (``fast_path``): PostgreSQL parses CSV files (JSON Lines files
are read as above), the same rules check the rows of all of a run's files at once, and one
insert loads the usable ones; a file with a key already loaded or in another file of the run,
or lines COPY cannot read as records, takes the path above, so both leave the same rows and
quarantine.

Everything a source does in a run happens in one transaction, so a crash (even kill -9 in the
middle of a COPY) leaves ``raw`` as it was, and a re-run, a backfill or days loaded out of order
leave it as one clean run would.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from trebol.erasure.suppression import Suppression, remove_suppressed
from trebol.extract import apply, checks, fast_path, snapshots
from trebol.extract.audit import (
    BatchResult,
    audit,
    record_missing_files,
    write_quarantine,
)
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
from trebol.settings import ConfigError, load_settings
from trebol.warehouse.ddl import ensure_raw_tables, raw_table

DAY_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
log = logging.getLogger(__name__)

__all__ = ["BatchResult", "FilePlan", "SourceConnector", "SourceUnavailable", "exports_for_day",
           "extract_and_load", "file_day", "plan_files"]


def file_day(path: Path) -> date | None:
    """The business day a file holds, from the YYYY-MM-DD in its name."""
    match = DAY_IN_NAME.search(path.name)
    return date.fromisoformat(match.group(1)) if match else None


def source_files(source: Source, sources_dir: Path) -> list[Path]:
    """The files a ``files`` or ``snapshot`` source's glob matches, only those that really are
    inside ``sources_dir`` (a symbolic link leading elsewhere is left out, with a warning)."""
    root = sources_dir.resolve()
    inside = []
    for path in sorted(sources_dir.glob(source.path or "")):
        if path.resolve().is_relative_to(root):
            inside.append(path)
        else:
            log.warning("%s: %s leads outside the sources folder %s; not read", source.name, path, root)
    return inside


def exports_for_day(sources: Iterable[Source], sources_dir: Path, day: date) -> list[Path]:
    """The export files of ``files`` and ``snapshot`` sources dated ``day`` under ``sources_dir``."""
    return sorted(path for source in sources if source.kind in ("files", "snapshot")
                  for path in source_files(source, sources_dir) if file_day(path) == day)


def _day_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _batch_id(path: Path, sources_dir: Path) -> str:
    """The file's path under the sources folder (a name that is not UTF-8 shown as Latin-1)."""
    return printable(path.relative_to(sources_dir).as_posix())


@dataclass(frozen=True)
class FilePlan:
    """The files a run loads for a ``files`` or ``snapshot`` source, oldest first."""

    files: list[Path]
    notes: list[str]
    # snapshots: the history is first rolled back to the state before this day (a re-delivered
    # snapshot of this day replaces it, and the later ones are applied again after it)
    replay_from: date | None = None
    # the days that have a file on disk (loaded before or not)
    days_on_disk: frozenset[date] = frozenset()


def plan_files(conn: psycopg.Connection, source: Source, sources_dir: Path, interval: Interval,
               tz: ZoneInfo) -> FilePlan:
    """Files this run loads for a ``files`` or ``snapshot`` source.

    ``files``: every file dated before the interval end whose content is not in the audit yet
    (new, late or re-delivered with other content); loading a file again with the same content
    would change nothing, so it is skipped. ``snapshot``: every snapshot dated before the
    interval end newer than the newest one applied (a held one is tried again); and when a
    snapshot already loaded (applied or held) is re-delivered with other content, that day and
    every later one, applied again from the history as the day before left it.
    """
    dated = sorted((day, path) for path in source_files(source, sources_dir)
                   if (day := file_day(path)) is not None and _day_start(day, tz) < interval.end)
    loaded = {row[0]: row[1:] for row in conn.execute(
        "select batch_id, checksum, file_day, held_reason from raw._load_audit where source = %s",
        (source.name,)).fetchall()}
    changed = {batch: day for day, path in dated if (batch := _batch_id(path, sources_dir)) in loaded
               and loaded[batch][0] != sha256(path)}
    on_disk = frozenset(day for day, _ in dated)
    if source.kind != "snapshot":
        return FilePlan([path for _, path in dated if (batch := _batch_id(path, sources_dir))
                         not in loaded or batch in changed], [], None, on_disk)
    newest = max((day for _, day, held in loaded.values() if day is not None and held is None),
                 default=None)
    replay_from = min((day for day in changed.values() if newest is not None and day <= newest), default=None)
    notes: list[str] = []
    chosen = []
    for day, path in dated:
        batch = _batch_id(path, sources_dir)
        if replay_from is not None and day >= replay_from:
            chosen.append(path)
        elif newest is not None and day <= newest:
            if batch not in loaded:
                notes.append(f"{batch}: snapshot older than the applied one of {newest}; not applied")
        else:
            chosen.append(path)
    if replay_from is not None:
        notes.append(f"snapshot of {replay_from} re-delivered with other content: the history is "
                     f"rolled back to the day before and {len(chosen)} snapshot(s) applied again")
    return FilePlan(chosen, notes, replay_from, on_disk)


class NothingToConfirm(ConfigError):
    """``trebol snapshot confirm`` names no held snapshot; the message says what there is."""


def confirm_held_snapshot(conn: psycopg.Connection, source: Source, day: date,
                          confirmed_by: str) -> str:
    """Record that the held snapshot of ``day`` is right as it is (the records it closes are
    really gone): the next run that reaches it applies it. Returns what was confirmed."""
    if source.kind != "snapshot":
        raise NothingToConfirm(f"{source.name} is a {source.kind} source: only snapshots are held")
    row = conn.execute("select batch_id, checksum, held_reason from raw._load_audit "
                       "where source = %s and file_day = %s order by batch_id limit 1",
                       (source.name, day)).fetchone()
    if row is None:
        raise NothingToConfirm(f"{source.name}: no snapshot of {day} was loaded")
    batch_id, checksum, held_reason = row
    if held_reason is None:
        raise NothingToConfirm(f"{source.name} {batch_id}: applied, not held: nothing to confirm")
    conn.execute("insert into raw._snapshot_confirmations (source, batch_id, checksum, "
                 "confirmed_by) values (%s, %s, %s, %s) on conflict do nothing",
                 (source.name, batch_id, checksum, confirmed_by))
    return (f"{source.name} {batch_id} (sha256 {checksum[:12]}…) confirmed: the next run for a date "
            f"after {day} applies it as it is (it was held: {held_reason.split(';')[0]})")


def _confirmed(conn: psycopg.Connection, source: Source, batch_id: str, checksum: str) -> bool:
    """Whether an operator confirmed this snapshot file as it is (``trebol snapshot confirm``)."""
    return bool(conn.execute(
        "select exists (select from raw._snapshot_confirmations where source = %s "
        "and batch_id = %s and checksum = %s)", (source.name, batch_id, checksum)).fetchone()[0])


def _load_batch(conn: psycopg.Connection, source: Source, batch_id: str, location: str,
                day: date | None, interval: Interval, timezone: str,
                stage: Callable[[], Staged], suppression: Suppression) -> BatchResult:
    """Read, check, apply and audit one batch (inside the source's transaction)."""
    started_at = conn.execute("select clock_timestamp()").fetchone()[0]
    staged = stage()
    staged.suppressed = remove_suppressed(conn, source, suppression)
    checks.check(conn, source, interval, staged, timezone)
    checks.apply_rules(conn, source)
    checks.rank_duplicates(conn, source)
    held_reason = None
    if staged.refused is not None:
        if source.kind == "snapshot":
            staged.notes.append("snapshot not applied: every line refused for the header")
    elif source.kind == "snapshot":
        snapshots.stage_unreadable_keys(conn, source)
        diff = snapshots.apply_snapshot(conn, source, batch_id, day or interval.end.date(),
                                    _confirmed(conn, source, batch_id, staged.checksum))
        staged.notes.append(diff.note)
        held_reason = diff.held_reason
    else:
        apply.merge(conn, source, batch_id, apply.available_from(source, day, timezone))
    quarantined = write_quarantine(conn, source, batch_id)
    return audit(conn, source, batch_id, location, day, staged, interval, quarantined, started_at,
                 held_reason)


def extract_and_load(conn: psycopg.Connection, source: Source, sources_dir: Path, interval: Interval,
                     lookback_days: int, timezone: str,
                     connect: SourceConnector | None = None,
                     suppression: Suppression | None = None) -> list[BatchResult]:
    """Load every batch this interval needs for ``source``, all in one transaction;
    ``suppression``: the salt the suppression list is read with (default: from the settings)."""
    suppression = suppression or Suppression.from_settings(load_settings())
    ensure_raw_tables(conn, [source], timezone)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"trebol.load.{source.name}",))
        if source.kind == "postgres":
            results = [_load_cursor_range(conn, source, interval, lookback_days, timezone, connect,
                                          suppression)]
        else:
            results = _load_files(conn, source, sources_dir, interval, timezone, suppression)
        if any(result.rows_loaded for result in results):
            # fresh statistics for the plans that read the run's batches through raw's index on
            # _batch_id (the line views' tests, the quality views): autovacuum analyzes a table
            # only after a tenth of it changed, and a database source's first load is one batch,
            # so its statistics said every batch id matches every row (measured at 1 million
            # people: the POS lines' test of the day read all 10 million lines, 9.9 s)
            conn.execute(sql.SQL("analyze {}").format(raw_table(source)))
    return results


def _load_cursor_range(conn: psycopg.Connection, source: Source, interval: Interval,
                       lookback_days: int, timezone: str, connect: SourceConnector | None,
                       suppression: Suppression) -> BatchResult:
    """A database source's batch: the cursor range from the extraction start to the interval end."""
    if connect is None:
        raise SourceUnavailable(f"source {source.name}: no connector for {source.connection!r}")
    start = extraction_start(conn, source, interval, lookback_days)
    # the batch is the cursor range read: a re-run with the same range replaces its own
    # audit and quarantine rows, and never those of a wider earlier range
    batch_id = f"{start.isoformat() if start else '-infinity'}/{interval.end.isoformat()}"
    location = f"{source.connection}:{source.table or 'query'} where {source.cursor} in [{batch_id})"
    return _load_batch(conn, source, batch_id, location, None, interval, timezone,
                       lambda: stage_postgres(conn, source, interval, start, connect), suppression)


def _load_files(conn: psycopg.Connection, source: Source, sources_dir: Path, interval: Interval,
                timezone: str, suppression: Suppression) -> list[BatchResult]:
    """A file source's batches: each file the interval needs, through the fast path when it can."""
    tz = ZoneInfo(timezone)
    results: list[BatchResult] = []
    plan = plan_files(conn, source, sources_dir, interval, tz)
    for note in plan.notes:
        log.warning("%s: %s", source.name, note)
    record_missing_files(conn, source, plan.days_on_disk, interval, tz)
    if plan.replay_from is not None:
        snapshots.rollback_snapshots(conn, source, plan.replay_from)
    stage_file = stage_jsonl if source.format == "jsonl" else stage_csv
    started_at = conn.execute("select clock_timestamp()").fetchone()[0]
    shortcut = fast_path.load_files(conn, source, [
        fast_path.Export(path, _batch_id(path, sources_dir),
                         apply.available_from(source, file_day(path), timezone)
                         if source.keeps_versions else None)
        for path in plan.files], interval, timezone, suppression)
    for path in plan.files:
        batch_id = _batch_id(path, sources_dir)
        if batch_id in shortcut:
            loaded = shortcut[batch_id]
            results.append(audit(conn, source, batch_id, batch_id, file_day(path), loaded.staged,
                                 interval, loaded.quarantined, started_at))
            continue
        results.append(_load_batch(
            conn, source, batch_id, batch_id, file_day(path), interval, timezone,
            lambda path=path: stage_file(conn, source, path), suppression))
    return results
