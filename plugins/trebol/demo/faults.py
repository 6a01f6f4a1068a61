"""Data-quality faults: where they go, what a faulty line looks like, and the ground-truth log.

Every fault is an *extra* physical line (or, in the POS database, an extra one-line ticket) next to
the clean data, so removing what ``ground_truth/faults.csv`` lists leaves exactly the clean export.
A duplicate repeats the line before it; the other kinds are altered copies of the line before them.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KINDS = ("duplicate", "absurd_amount", "negative_amount", "future_date", "missing_key", "malformed_line",
         "latin1_bytes", "extra_column", "missing_column", "invalid_json", "unknown_product")
FAULT_COLUMNS = ("source", "location", "line", "key", "kind")
FUTURE_YEAR = "2099"


def in_future_year(stamp: str) -> str:
    """An ISO date or timestamp moved to ``FUTURE_YEAR``, a valid one: 29 February (2099 is no
    leap year) becomes the 28th. The typed POS columns refuse an invalid date outright."""
    moved = FUTURE_YEAR + stamp[4:]
    return moved[:5] + "02-28" + moved[10:] if moved[5:10] == "02-29" else moved


@dataclass(frozen=True)
class Fault:
    """One injected fault: ``line`` is the 1-based physical line (None for a table or a whole file)."""

    source: str
    location: str
    line: int | None
    key: str
    kind: str


class FaultLog:
    """Collects every injected fault, in the order injected."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(self, source: str, location: str, line: int | None, key: str, kind: str) -> None:
        assert kind in KINDS, kind
        self.faults.append(Fault(source, location, line, key, kind))

    def __len__(self) -> int:
        return len(self.faults)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(FAULT_COLUMNS)
            for f in self.faults:
                writer.writerow((f.source, f.location, "" if f.line is None else f.line, f.key, f.kind))


def plan_faults(rng: np.random.Generator, counts: Sequence[int], kinds: Sequence[str],
                rate: float) -> list[list[tuple[int, str]]]:
    """Pick the rows that get a fault, per file: ``[(row index, kind), ...]`` sorted by row.

    About ``rate`` x rows faults in all, and (when the rate is positive) every kind at least once.
    """
    plan: list[list[tuple[int, str]]] = [[] for _ in counts]
    total = int(sum(counts))
    if rate <= 0 or total == 0:
        return plan
    n = min(total, max(int(rng.binomial(total, rate)), len(kinds)))
    rows = np.sort(rng.choice(total, n, replace=False))
    which = rng.integers(0, len(kinds), n)
    if n >= len(kinds):
        which[rng.permutation(n)[: len(kinds)]] = np.arange(len(kinds))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    files = np.searchsorted(starts, rows, side="right") - 1
    for row, file, kind in zip(rows.tolist(), files.tolist(), which.tolist(), strict=True):
        plan[file].append((row - int(starts[file]), kinds[kind]))
    return plan
