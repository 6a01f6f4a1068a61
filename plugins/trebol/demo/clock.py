"""Time inside the simulator: history days, UTC instants, local dates and ISO 8601 stamps with offset.

Every instant is an integer number of seconds since the Unix epoch (UTC); a day is an index into the
simulated history (0 = its first day, ``days`` = ``end_date``, excluded). Instants become local dates
and ``2026-06-29T18:03:11+02:00`` strings only when written, vectorised so millions stay cheap.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

MARGIN_DAYS = 60  # events are scheduled up to this many days past the end (then dropped)
_STEP = 900  # offsets are looked up on a quarter-hour grid (zone transitions fall on it)


def _offset_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


class Clock:
    """Maps history days and instants to local dates and timestamps in one time zone."""

    def __init__(self, start: date, days: int, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)
        self.start = start
        self.days = days
        span = days + MARGIN_DAYS
        self.day_start = np.array(
            [int(datetime.combine(start + timedelta(days=d), time(), self.tz).timestamp())
             for d in range(span + 1)], dtype=np.int64)
        self.start_ts = int(self.day_start[0])
        self.end_ts = int(self.day_start[days])
        self.day_names = [(start + timedelta(days=d)).isoformat() for d in range(span + 1)]
        self._grid0 = self.start_ts - 2 * 86400
        grid = self._grid0 + _STEP * np.arange((span + 4) * 86400 // _STEP, dtype=np.int64)
        self._offsets = np.array(
            [int(datetime.fromtimestamp(int(g), self.tz).utcoffset().total_seconds()) for g in grid],
            dtype=np.int64)
        self._local0 = (start - date(1970, 1, 1)).days

    def offset(self, ts: np.ndarray) -> np.ndarray:
        """UTC offset in seconds in effect at each instant."""
        index = np.clip((np.asarray(ts, dtype=np.int64) - self._grid0) // _STEP, 0, len(self._offsets) - 1)
        return self._offsets[index]

    def local_day(self, ts: np.ndarray) -> np.ndarray:
        """History day (0-based) on which each instant falls, in local time."""
        ts = np.asarray(ts, dtype=np.int64)
        return (ts + self.offset(ts)) // 86400 - self._local0

    def at(self, day: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """Instant ``seconds`` after local midnight of history ``day`` (keep seconds under 23 h)."""
        day = np.clip(np.asarray(day, dtype=np.int64), 0, len(self.day_start) - 1)
        return self.day_start[day] + np.asarray(seconds).astype(np.int64)

    def stamps(self, ts: np.ndarray) -> list[str]:
        """ISO 8601 local timestamps with offset, e.g. ``2026-06-29T18:03:11+02:00``."""
        ts = np.asarray(ts, dtype=np.int64)
        if ts.size == 0:
            return []
        off = self.offset(ts)
        text = np.datetime_as_string((ts + off).astype("datetime64[s]"), unit="s").tolist()
        suffix = {int(o): _offset_text(int(o)) for o in np.unique(off)}
        return [t + suffix[o] for t, o in zip(text, off.tolist(), strict=True)]

    def stamp(self, ts: int) -> str:
        return self.stamps(np.array([ts]))[0]
