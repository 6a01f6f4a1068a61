"""The demo, apart from the product: a seeded, reproducible simulator of a shop's four
overlapping source systems, plus ground truth.

``simulate(spec, out_dir, pos_dsn)`` writes, for ``spec.customers`` people over ``spec.days`` days:

- POS: schema ``pos`` in the PostgreSQL database ``pos_dsn`` (stores, products, tickets, ticket lines);
- e-commerce: ``ecom/orders/YYYY-MM-DD.jsonl`` (order versions);
- loyalty: ``loyalty/members/YYYY-MM-DD.csv`` and ``loyalty/points/YYYY-MM-DD.csv``;
- CRM: ``crm/contacts/YYYY-MM-DD.csv`` (full snapshots: every day's, or the newest
  ``spec.crm_snapshot_retention_days`` days') and ``crm/cases/YYYY-MM-DD.csv``;
- ``ground_truth/``: ``people.csv``, ``identities.csv``, ``faults.csv`` (never read by the pipeline);
- ``manifest.json``: the spec, so an identical request reuses what is there.

Only ``trebol demo`` and ``trebol simulate`` call it; the pipeline (``trebol run``, the DAG) never
does. It only replaces what it created (``SimulatorRefused`` otherwise, before any write).
"""

from trebol.demo.core import simulate
from trebol.demo.spec import SimulationResult, SimulationSpec, SimulatorRefused

__all__ = ["SimulationResult", "SimulationSpec", "SimulatorRefused", "simulate"]
