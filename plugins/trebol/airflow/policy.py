"""Per-task policy of the Trébol DAGs: retries with exponential backoff, and an execution timeout
sized by measurement.

The rule: a task's ``execution_timeout`` is three times its longest measured duration on ten times
the demo's data (a first run, which loads every day of history: the heaviest a night gets),
rounded up to whole 5 minutes, and never under 5 minutes (start-up and a loaded machine). Three
times leaves room for a slower machine or a busier warehouse; a task past it is stuck, not slow.
A warehouse larger than the tenfold data (``TREBOL_EXPECTED_CUSTOMERS`` above ``MEASURED_CUSTOMERS``)
scales the measurement linearly with its customers: the tasks' work grows with the rows (the
benchmark, docs/benchmarks.md "Whole pipeline"), and a timeout sized for 20,000 customers would stop
a healthy first run of a million.
The measurements (``make run``; seconds from the ``task_instance`` table of
``.trebol/airflow/airflow.db``): ``demo`` at 2,000 customers, ``tenfold`` at 20,000
(``TREBOL_DEMO_CUSTOMERS=20000``), both a first run of 2026-06-30 on the 2-core machine,
shared with other work (README, "Task policy").

Retries are for what time may cure (a connection, a lock): two, after ``retry_delay``
(``TREBOL_RETRY_DELAY_SECONDS``) then about twice that (``retry_exponential_backoff``), never more
than ``MAX_RETRY_DELAY`` apart. The checks and ``fail_run`` are not retried: a retry would meet the
same data, so their answer is final.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

OWNER = "data-engineering"
RETRIES = 2
RETRY_EXPONENTIAL_BACKOFF = 2.0
MAX_RETRY_DELAY = timedelta(minutes=30)
TIMEOUT_FACTOR = 3
TIMEOUT_FLOOR = timedelta(minutes=5)
TIMEOUT_STEP = timedelta(minutes=5)
# the customers of the tenfold measurement
MEASURED_CUSTOMERS = 20_000

# What every task of a Trébol DAG inherits (a DAG adds its retry_delay and callbacks).
DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": RETRIES,
    "retry_exponential_backoff": RETRY_EXPONENTIAL_BACKOFF,
    "max_retry_delay": MAX_RETRY_DELAY,
}


@dataclass(frozen=True)
class TaskPolicy:
    """A task's measured durations (seconds; a mapped task: its slowest instance) and retries."""

    demo_seconds: float
    tenfold_seconds: float
    retries: int = RETRIES

    def execution_timeout(self, customers: int = MEASURED_CUSTOMERS) -> timedelta:
        """``TIMEOUT_FACTOR`` times the tenfold measurement, scaled up to ``customers`` when they
        are more than measured, in whole steps, at least the floor."""
        scale = max(1.0, customers / MEASURED_CUSTOMERS)
        wanted = TIMEOUT_FACTOR * self.tenfold_seconds * scale
        steps = math.ceil(wanted / TIMEOUT_STEP.total_seconds())
        return max(TIMEOUT_FLOOR, steps * TIMEOUT_STEP)


POLICY: dict[str, TaskPolicy] = {
    # trebol_nightly; extract_load: its slowest source, crm_contacts (a first run loads its 180
    # daily snapshots: 5.0 to 7.1 s at 2,000 customers, 37.4 s at 20,000 since the snapshot diff
    # costs what the snapshot costs (docs/benchmarks.md, "CRM snapshots"; 1,515.8 s before), the
    # others at most 17.4 s)
    "prepare_warehouse": TaskPolicy(5.6, 5.2),
    "pull_consent_feedback": TaskPolicy(0.05, 0.05),
    "list_sources": TaskPolicy(0.09, 0.05),
    "extract_load": TaskPolicy(7.1, 37.4),
    "dbt_build": TaskPolicy(18.6, 66.0),
    "check_raw_batches": TaskPolicy(3.9, 16.5, retries=0),
    "fit_clv": TaskPolicy(2.3, 9.2),
    "dbt_build_value": TaskPolicy(6.0, 37.6),
    "stage_audiences": TaskPolicy(0.14, 0.6),
    "check_marts": TaskPolicy(1.1, 5.8, retries=0),
    "list_syncs": TaskPolicy(0.05, 0.09),
    "push_audiences": TaskPolicy(0.38, 1.1),
    "summarize": TaskPolicy(0.31, 3.4),
    "fail_run": TaskPolicy(0.0, 0.0, retries=0),
    # after a backfill: both dbt builds in one, as of the newest date (their sum, not measured
    # on its own); find_newest_date reads one aggregate of segment_history
    "find_newest_date": TaskPolicy(0.1, 0.2),
    "rebuild_current_marts": TaskPolicy(18.6 + 6.0, 66.0 + 37.6),
    # trebol_erasure: one request on the 400-person test demo took 0.3 to 0.8 s in all
    # (tests/integration/test_erasure.py); the tenfold figures are ten times those, not measured
    "open_request": TaskPolicy(0.1, 1.0),
    "suppress": TaskPolicy(0.2, 2.0),
    "remove_from_destinations": TaskPolicy(0.3, 3.0),
    "purge_warehouse": TaskPolicy(0.5, 5.0),
    "close_request": TaskPolicy(0.05, 0.5),
    # trebol_marts_published (measured in tests/unit/test_alerts.py: one marker file)
    "mark_published": TaskPolicy(0.1, 0.1),
}


def task_policy(task_id: str, customers: int = MEASURED_CUSTOMERS) -> dict[str, Any]:
    """The operator arguments of a task's policy for a warehouse of about ``customers``
    (``TREBOL_EXPECTED_CUSTOMERS``): ``retries`` and ``execution_timeout``."""
    policy = POLICY[task_id]
    return {"retries": policy.retries, "execution_timeout": policy.execution_timeout(customers)}
