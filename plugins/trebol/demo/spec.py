"""The simulator's public value types: what to simulate (``SimulationSpec``) and what came out."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

# Bump when the generated data changes for the same spec, so stale outputs are not reused.
GENERATOR_VERSION = 3


@dataclass(frozen=True)
class SimulationSpec:
    """What to simulate: ``days`` days of history ``[end_date - days, end_date)`` for ``customers`` people.

    ``crm_snapshot_retention_days``: the CRM's drop folder keeps only the full contact
    snapshots of that many newest days, as a real one does (None, the default: every day's, as
    the demo has them); the other exports keep every day."""

    customers: int
    days: int
    end_date: date
    seed: int
    timezone: str = "Europe/Madrid"
    fault_rate: float = 0.004
    correction_rate: float = 0.01
    crm_snapshot_retention_days: int | None = None

    def __post_init__(self) -> None:
        if self.customers < 1 or self.days < 1:
            raise ValueError("a simulation needs at least one customer and one day")
        if self.seed < 0:
            raise ValueError("the seed must not be negative")
        if not (0.0 <= self.fault_rate <= 0.5 and 0.0 <= self.correction_rate <= 1.0):
            raise ValueError("fault_rate must be within [0, 0.5] and correction_rate within [0, 1]")
        if self.crm_snapshot_retention_days is not None and self.crm_snapshot_retention_days < 1:
            raise ValueError("the CRM snapshot retention must be at least one day")

    @property
    def start_date(self) -> date:
        """The first simulated day (``end_date`` itself is not simulated)."""
        return self.end_date - timedelta(days=self.days)

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON-friendly values, recorded in the manifests (the retention only when
        set: a spec without it is recorded as before it existed, and its outputs are reused)."""
        recorded: dict[str, Any] = {
            "customers": self.customers, "days": self.days, "end_date": self.end_date.isoformat(),
            "seed": self.seed, "timezone": self.timezone, "fault_rate": self.fault_rate,
            "correction_rate": self.correction_rate}
        if self.crm_snapshot_retention_days is not None:
            recorded["crm_snapshot_retention_days"] = self.crm_snapshot_retention_days
        return recorded

    def rng(self, part: str) -> np.random.Generator:
        """An independent, reproducible random stream for one part of the simulation."""
        return np.random.default_rng([self.seed, zlib.crc32(part.encode())])


@dataclass(frozen=True)
class SimulationResult:
    """Where the data went, how many rows each source entity got, how many faults were injected."""

    out_dir: Path
    counts: dict[str, int]
    faults: int
    reused: bool


class SimulatorRefused(RuntimeError):
    """The simulator was pointed at data it did not create; nothing was changed. The message is
    one line naming the place."""
