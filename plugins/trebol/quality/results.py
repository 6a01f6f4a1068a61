"""``marts.data_quality_results``: every expectation's outcome of every run, for BI and the summary."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import psycopg

from trebol.quality.gx_project import CheckResult
from trebol.warehouse.catalog import relation_exists

COLUMNS = ("as_of_date", "run_id", "suite", "expectation", "expectation_id", "column_name",
           "severity", "success", "observed_value")


def record(conn: psycopg.Connection, as_of_date: date, run_id: str, suites: Iterable[str],
           checks: list[CheckResult]) -> None:
    """Replace the run's results of ``suites`` with ``checks`` (a retried task rewrites its rows)."""
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute("delete from marts.data_quality_results where run_id = %s and suite = any(%s)",
                       (run_id, list(suites)))
        with cursor.copy(f"copy marts.data_quality_results ({', '.join(COLUMNS)}) from stdin") as copy:
            for check in checks:
                copy.write_row((as_of_date, run_id, check.suite, check.expectation,
                                check.expectation_id, check.column, check.severity, check.success,
                                check.observed_value))


def run_outcome(conn: psycopg.Connection, run_id: str) -> dict[str, object]:
    """Passed / failed counts of a run's checks and the messages of its failures by severity."""
    if not relation_exists(conn, "marts.data_quality_results"):
        return {"passed": 0, "failed": 0, "errors": [], "warnings": []}
    rows = conn.execute("""
        select suite, expectation, column_name, severity, success, observed_value
        from marts.data_quality_results where run_id = %s
        order by suite, expectation, column_name nulls first, expectation_id""", (run_id,)).fetchall()
    failures: dict[str, list[str]] = {"error": [], "warning": []}
    for suite, expectation, column, severity, success, observed in rows:
        if not success:
            check = CheckResult(suite, expectation, "", column, severity, success, observed)
            failures[severity].append(check.message)
    return {"passed": sum(row[4] for row in rows), "failed": sum(not row[4] for row in rows),
            "errors": failures["error"], "warnings": failures["warning"]}
