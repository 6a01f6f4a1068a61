"""Which run dates the exports can support, checked before a run starts.

A run of as-of date D loads the day before D (``trebol.interval``), so D must lie between the day
after the first and the day after the last day of the daily exports (the ``files`` and
``snapshot`` sources of cadence ``daily``) in the sources folder. A date outside that range — a
typo like 2030-01-01, or a date before the first export — would otherwise "succeed" on no data,
stage empty audiences and move the newest date the warehouse holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

from trebol.extract.load import file_day, source_files
from trebol.extract.sources import Source


class RunDateOutOfRange(ValueError):
    """The run's as-of date lies outside what the exports hold; the message names the range."""


def export_day_range(sources: Iterable[Source], sources_dir: Path) -> tuple[date, date] | None:
    """The first and last day of the daily exports under ``sources_dir``; None without any."""
    days = [day for source in sources
            if source.kind in ("files", "snapshot") and source.cadence == "daily"
            for path in source_files(source, sources_dir) if (day := file_day(path)) is not None]
    return (min(days), max(days)) if days else None


def check_run_date(as_of_date: date, sources: Iterable[Source], sources_dir: Path) -> None:
    """Raise :class:`RunDateOutOfRange` when ``as_of_date`` loads a day outside the daily exports'
    range (with no daily export at all there is no range: the missing files are the quality
    checks' to report, and ``trebol run`` names them before starting)."""
    days = export_day_range(sources, sources_dir)
    if days is None:
        return
    first, last = days
    if not first < as_of_date <= last + timedelta(days=1):
        raise RunDateOutOfRange(
            f"run date {as_of_date} (loads {as_of_date - timedelta(days=1)}) is outside the exports "
            f"in {sources_dir}, which hold {first} to {last}: run dates "
            f"{first + timedelta(days=1)} to {last + timedelta(days=1)}")
