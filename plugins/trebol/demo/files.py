"""Writing the file exports: CSV lines (RFC 4180 quoting, ``\\n`` line ends, UTF-8) and day files with
their injected faults, recorded line by line in the fault log.

No field ever holds a line break, so one physical line is one record: a loader can split on ``\\n``
first and isolate a malformed line without losing its neighbours.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trebol.demo.faults import FaultLog, in_future_year, plan_faults

_NEEDS_QUOTES = re.compile(r'[",\r\n]')
FaultMaker = Callable[[int, str], tuple[str | bytes, str]]


def csv_line(fields: Sequence[str]) -> str:
    """One CSV record with minimal RFC 4180 quoting, ending in ``\\n``."""
    return ",".join(
        '"' + f.replace('"', '""') + '"' if _NEEDS_QUOTES.search(f) else f for f in fields) + "\n"


@dataclass(frozen=True)
class CsvTable:
    """A family of CSV day files and how each fault kind alters one of its rows."""

    source: str  # pos | ecom | loyalty | crm
    folder: str  # e.g. "loyalty/points"
    columns: tuple[str, ...]
    kinds: tuple[str, ...]  # the row-level fault kinds that fit this table
    key: int = 0
    dates: tuple[int, ...] = ()
    amount: int | None = None
    absurd: str = "99999.99"
    on_negative: tuple[tuple[int, str], ...] = ()  # other fields set on a negative-amount copy
    name: int | None = None  # the column that gets a Latin-1 letter

    @property
    def header(self) -> str:
        return csv_line(self.columns)

    def fault(self, fields: Sequence[str], kind: str, rng: np.random.Generator) -> tuple[str | bytes, str]:
        """The faulty copy of a row (a line, or bytes for a Latin-1 line) and the key it shows."""
        f = list(fields)
        key = f[self.key]
        match kind:
            case "duplicate":
                pass  # an exact copy of the row: the fields stay as they are
            case "absurd_amount":
                f[self.amount] = self.absurd
            case "negative_amount":
                value = f[self.amount].lstrip("-")
                f[self.amount] = "-" + (value if value.strip("0.") else "25.00")
                for column, text in self.on_negative:
                    f[column] = text
            case "future_date":
                for column in self.dates:
                    if f[column]:
                        f[column] = in_future_year(f[column])
            case "missing_key":
                f[self.key] = key = ""
            case "malformed_line":
                if rng.random() < 0.5:
                    f[1] = '"' + f[1]  # an opening quote never closed
                    return ",".join(f) + "\n", key
                f = f[:-1] if rng.random() < 0.5 else [*f, "x"]
            case "latin1_bytes":
                if f[self.name].isascii():
                    f[self.name] = "Muñoz"
                return csv_line(f).encode("latin-1", errors="replace"), key
            case _:
                raise ValueError(f"{kind} does not fit {self.folder}")
        return csv_line(f), key


def write_day_file(path: Path, header: str | None, lines: Sequence[str], planned: list[tuple[int, str]],
                   make_fault: FaultMaker, log: FaultLog, source: str, location: str) -> int:
    """Write one day file: ``lines`` with a faulty line after each planned row; returns data lines."""
    out: list[str | bytes] = [header] if header else []
    previous = 0
    binary = False
    for row, kind in planned:
        out.extend(lines[previous: row + 1])
        previous = row + 1
        text, key = make_fault(row, kind)
        binary |= isinstance(text, bytes)
        out.append(text)
        log.add(source, location, len(out), key, kind)
    out.extend(lines[previous:])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not binary:
        path.write_bytes("".join(out).encode("utf-8"))  # type: ignore[arg-type]
    else:
        chunks: list[bytes] = []
        pending: list[str] = []
        for item in out:
            if isinstance(item, bytes):
                chunks.append("".join(pending).encode("utf-8"))
                chunks.append(item)
                pending = []
            else:
                pending.append(item)
        chunks.append("".join(pending).encode("utf-8"))
        path.write_bytes(b"".join(chunks))
    return len(lines) + len(planned)


def write_csv_family(out_dir: Path, table: CsvTable, day_names: Sequence[str],
                     rows_by_day: Sequence[Sequence[Sequence[str]]], rng: np.random.Generator, rate: float,
                     log: FaultLog, skip_days: frozenset[int] = frozenset()) -> int:
    """Write one CSV file per day (header only on quiet days) with planned faults; returns data lines."""
    counts = [0 if d in skip_days else len(rows) for d, rows in enumerate(rows_by_day)]
    plan = plan_faults(rng, counts, table.kinds, rate)
    written = 0
    for day, rows in enumerate(rows_by_day):
        if day in skip_days:
            continue
        location = f"{table.folder}/{day_names[day]}.csv"
        lines = [csv_line(r) for r in rows]
        written += write_day_file(out_dir / location, table.header, lines, plan[day],
                                  lambda row, kind, rows=rows: table.fault(rows[row], kind, rng),
                                  log, table.source, location)
    return written
