"""Demo source data: a seeded, reproducible stand-in for a shop's transaction exports and CRM.

Writes, under the sources folder:

- ``shop/transactions/<day>.csv``: the transactions of one day (plus corrections of earlier ones,
  carried as later versions with a newer ``updated_at``), with a small rate of injected faults;
- ``crm/contacts/<day>.csv``: a full daily snapshot of CRM contacts with marketing consent;
- ``ground_truth/faults.csv``: every injected fault (file, line, kind) for tests; the pipeline
  never reads it;
- ``manifest.json``: the parameters, so an identical request is a no-op.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

FIRST_NAMES = ("Lucía", "Hugo", "Martina", "Mateo", "Sofía", "Leo", "María", "Pablo", "Julia",
               "Álvaro", "Paula", "Daniel", "Valeria", "Adrián", "Emma", "Manuel", "Noa", "Jorge")
LAST_NAMES = ("García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez",
              "Pérez", "Gómez", "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno")
TRANSACTION_COLUMNS = ("transaction_id", "customer_id", "transacted_at", "amount", "updated_at")
CONTACT_COLUMNS = ("customer_id", "email", "first_name", "last_name", "has_marketing_consent",
                   "unsubscribed_at")


@dataclass(frozen=True)
class SimulationSpec:
    """What to simulate: ``days`` days of history ending the day before ``end_date``."""

    customers: int
    days: int
    end_date: date
    seed: int
    timezone: str = "Europe/Madrid"
    fault_rate: float = 0.004
    correction_rate: float = 0.01

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days)


@dataclass(frozen=True)
class SimulationResult:
    """Where the data went and how much of it there is."""

    out_dir: Path
    transactions: int
    contacts: int
    faults: int
    reused: bool


def _write_csv(path: Path, header: tuple[str, ...], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _local_timestamp(day: date, seconds: int, tz: ZoneInfo) -> str:
    moment = datetime.combine(day, time(), tz) + timedelta(seconds=int(seconds))
    return moment.isoformat(timespec="seconds")


def simulate(spec: SimulationSpec, out_dir: Path,
             progress: Callable[[str], None] | None = None) -> SimulationResult:
    """Generate the demo sources for ``spec`` into ``out_dir`` (reused when already there)."""
    manifest_path = out_dir / "manifest.json"
    wanted = {k: str(v) for k, v in asdict(spec).items()}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("spec") == wanted:
            return SimulationResult(out_dir, manifest["transactions"], manifest["contacts"],
                                    manifest["faults"], reused=True)
    for sub in ("shop", "crm", "ground_truth"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)

    rng = np.random.default_rng(spec.seed)
    tz = ZoneInfo(spec.timezone)
    n = spec.customers
    # Heterogeneous repeat buying with dropout (Pareto/NBD-like): purchase rate per day,
    # probability of dropping out after each purchase, and a personal spend level.
    rate = rng.gamma(shape=0.9, scale=0.05, size=n)
    dropout = rng.beta(1.2, 10.0, size=n)
    spend = rng.gamma(shape=4.0, scale=12.0, size=n) + 5.0
    first_day = rng.integers(0, spec.days, size=n)
    consent = rng.random(n) < 0.72
    unsubscribed = consent & (rng.random(n) < 0.05)

    by_day: dict[int, list[list[str]]] = {d: [] for d in range(spec.days)}
    corrections: dict[int, list[list[str]]] = {d: [] for d in range(spec.days)}
    serial = 0
    for person in range(n):
        day = int(first_day[person])
        while day < spec.days:
            serial += 1
            seconds = int(rng.integers(8 * 3600, 22 * 3600))
            amount = round(float(rng.gamma(4.0, spend[person] / 4.0)), 2)
            if rng.random() < 0.04:
                amount = -round(amount * float(rng.uniform(0.2, 1.0)), 2)
            stamp = _local_timestamp(spec.start_date + timedelta(days=day), seconds, tz)
            row = [f"T{serial:08d}", f"C{person:06d}", stamp, f"{amount:.2f}", stamp]
            by_day[day].append(row)
            if rng.random() < spec.correction_rate:
                later = min(spec.days - 1, day + int(rng.integers(1, 4)))
                fixed = round(amount * 0.9, 2)
                updated = _local_timestamp(spec.start_date + timedelta(days=later), 23 * 3600, tz)
                corrections[later].append([row[0], row[1], stamp, f"{fixed:.2f}", updated])
            if rng.random() < dropout[person]:
                break
            day += 1 + int(rng.exponential(1.0 / max(rate[person], 1e-3)))

    faults: list[list[str]] = []
    transactions = 0
    for day in range(spec.days):
        rows = by_day[day] + corrections[day]
        rows.sort(key=lambda r: (r[4], r[0]))
        the_day = spec.start_date + timedelta(days=day)
        name = f"shop/transactions/{the_day.isoformat()}.csv"
        out_rows: list[list[str]] = []
        for row in rows:
            out_rows.append(row)
            if rng.random() < spec.fault_rate:
                kind = ("bad_amount", "missing_key", "future_date", "duplicate")[rng.integers(0, 4)]
                bad = list(row)
                if kind == "bad_amount":
                    bad[3] = "n/a"
                elif kind == "missing_key":
                    bad[0] = ""
                elif kind == "future_date":
                    bad[0] = bad[0] + "F"
                    bad[2] = bad[4] = "2099-01-01T10:00:00+01:00"
                out_rows.append(bad)
                faults.append([name, str(len(out_rows) + 1), kind])
        _write_csv(out_dir / name, TRANSACTION_COLUMNS, out_rows)
        transactions += len(out_rows)
        if progress and day % 30 == 0:
            progress(f"simulated {the_day.isoformat()}")

    contacts = 0
    known = first_day  # a person is in the CRM from their first purchase on
    for day in range(spec.days):
        the_day = spec.start_date + timedelta(days=day)
        rows = []
        for person in np.flatnonzero(known <= day):
            first = FIRST_NAMES[person % len(FIRST_NAMES)]
            last = LAST_NAMES[(person // len(FIRST_NAMES)) % len(LAST_NAMES)]
            unsub = ""
            if unsubscribed[person] and day >= first_day[person] + 10:
                unsub = _local_timestamp(spec.start_date + timedelta(days=int(first_day[person]) + 10),
                                         12 * 3600, tz)
            email = f"{first}.{last}.{person}@example.com".lower()
            rows.append([f"C{person:06d}", email, first, last,
                         "true" if consent[person] else "false", unsub])
        _write_csv(out_dir / f"crm/contacts/{the_day.isoformat()}.csv", CONTACT_COLUMNS, rows)
        contacts = len(rows)

    _write_csv(out_dir / "ground_truth/faults.csv", ("file", "line", "kind"), faults)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps({"spec": wanted, "transactions": transactions,
                                         "contacts": contacts, "faults": len(faults)}, indent=2))
    return SimulationResult(out_dir, transactions, contacts, len(faults), reused=False)
