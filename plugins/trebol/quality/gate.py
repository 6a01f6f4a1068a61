"""The quality gate: the raw-batch and mart checks of a run, their record, and the stop.

Each check task validates its suites on the run's batches, records every outcome in
``marts.data_quality_results``, rebuilds the run's Data Docs and then, if an expectation of
severity error failed, raises ``QualityGateError`` naming each failure: the task fails and the
push, which needs both check tasks, does not run. Failed warnings are logged and the run goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from trebol.extract.sources import Source
from trebol.quality import gx_project, results, views
from trebol.quality.gx_project import CheckResult, Validation
from trebol.quality.rules import QualityRules

log = logging.getLogger(__name__)

RAW_BATCHES = Validation("raw_batches", views.SCHEMA, "raw_source_days", ("source",),
                         rows_required=False)
MART_VALIDATIONS = (
    Validation("marts_dim_customers", "marts", "dim_customers", ("customer_key",), True),
    Validation("marts_customer_rfmt", "marts", "customer_rfmt", ("customer_key",), True),
    Validation("marts_customer_segments", "marts", "customer_segments", ("customer_key",), True),
    Validation("marts_customer_clv", "marts", "customer_clv", ("customer_key",), True),
    Validation("marts_segment_drift", views.SCHEMA, "segment_size_drift",
               ("segmentation", "segment"), True),
    Validation("activation_audiences", views.SCHEMA, "audience_consent",
               ("audience", "customer_key"), False),
)
# value sets of the mart suites, read from the dbt seeds that define them
SEED_VALUE_SETS = {
    "lifecycle_stages": "select lifecycle_stage from marts.lifecycle_stages",
    "rfm_segments": "select rfm_segment from marts.rfm_segments",
    "value_tiers": "select value_tier from marts.value_tiers",
}


class QualityGateError(RuntimeError):
    """An expectation of severity error failed: activation must not run for this data."""


@dataclass(frozen=True)
class QualityRun:
    """Where and for which run the checks happen."""

    dsn: str
    as_of_date: date
    interval_end: datetime
    run_id: str
    timezone: str
    expectations_dir: Path
    report_dir: Path


@dataclass(frozen=True)
class QualityReport:
    """What one check task found."""

    checks: list[CheckResult]
    data_docs_dir: Path

    @property
    def errors(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.success and check.severity == "error"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.success and check.severity == "warning"]

    def counts(self) -> dict[str, int]:
        failed = len(self.errors) + len(self.warnings)
        return {"passed": len(self.checks) - failed, "errors": len(self.errors),
                "warnings": len(self.warnings)}


def raw_validations(sources: list[Source]) -> list[Validation]:
    """One suite per source on the rows its batches loaded, and the batch-level suite."""
    return [*(Validation(f"raw_{source.name}", views.SCHEMA, views.loaded_view(source),
                         source.primary_key, rows_required=False) for source in sources),
            RAW_BATCHES]


def _parameters(conn: psycopg.Connection, run: QualityRun, rules: QualityRules,
                with_seeds: bool) -> dict[str, Any]:
    opened_at = datetime.combine(rules.business_opened_on, time(), ZoneInfo(run.timezone))
    parameters: dict[str, Any] = {
        "interval_end": run.interval_end,
        "last_day": run.as_of_date - timedelta(days=1),
        "business_opened_at": opened_at,
        "business_opened_on": rules.business_opened_on,
        "max_quarantined_share": rules.max_quarantined_share,
        "volume_min_ratio": rules.volume_min_ratio,
        "volume_max_ratio": rules.volume_max_ratio,
        "segment_drift_min_ratio": rules.segment_drift_min_ratio,
        "segment_drift_max_ratio": rules.segment_drift_max_ratio,
        "max_predicted_clv": rules.max_predicted_clv,
        "min_predicted_clv": -rules.max_predicted_clv,
    }
    if with_seeds:
        for name, query in SEED_VALUE_SETS.items():
            parameters[name] = [row[0] for row in conn.execute(query).fetchall()]
    return parameters


def _has_rows(conn: psycopg.Connection, validation: Validation, as_of_date: date) -> bool:
    query = sql.SQL("select exists (select from {} where as_of_date = %s)").format(
        sql.Identifier(validation.schema, validation.table))
    return bool(conn.execute(query, (as_of_date,)).fetchone()[0])


def _validate(conn: psycopg.Connection, run: QualityRun, stage: str,
              validations: list[Validation], parameters: dict[str, Any]) -> QualityReport:
    context = gx_project.open_context(run.expectations_dir, run.dsn, run.report_dir)
    checks: list[CheckResult] = []
    for validation in validations:
        if not _has_rows(conn, validation, run.as_of_date):
            if validation.rows_required:
                checks.append(CheckResult(validation.suite, "batch_has_rows", "batch_has_rows",
                                          None, "error", False,
                                          f"no rows in {validation.schema}.{validation.table} "
                                          f"as of {run.as_of_date}"))
            else:
                log.info("%s: nothing loaded for %s, nothing to validate", validation.suite,
                         run.as_of_date)
            continue
        checks += gx_project.run_validation(context, validation, run.as_of_date, parameters,
                                            run.interval_end)
    gx_project.build_data_docs(context, run.report_dir)
    results.record(conn, run.as_of_date, run.run_id, [v.suite for v in validations], checks)
    report = QualityReport(checks, gx_project.data_docs_dir(run.report_dir))
    for check in report.warnings:
        log.warning("data-quality warning: %s", check.message)
    log.info("%s checks as of %s: %s; Data Docs %s/index.html", stage, run.as_of_date,
             report.counts(), report.data_docs_dir)
    if report.errors:
        raise QualityGateError(
            f"{len(report.errors)} {stage} check(s) of severity error failed as of "
            f"{run.as_of_date}, activation stopped: " + " || ".join(c.message for c in report.errors))
    return report


def check_raw_batches(conn: psycopg.Connection, run: QualityRun, sources: list[Source],
                      rules: QualityRules) -> QualityReport:
    """Validate the batches the run loaded, source by source, and their volumes."""
    views.ensure_raw_views(conn, sources, rules, run.timezone)
    return _validate(conn, run, "raw-batch", raw_validations(sources),
                     _parameters(conn, run, rules, with_seeds=False))


def check_marts(conn: psycopg.Connection, run: QualityRun, rules: QualityRules) -> QualityReport:
    """Validate the marts, the segment sizes against the previous run and the staged audiences."""
    views.ensure_mart_views(conn, rules)
    return _validate(conn, run, "mart", list(MART_VALIDATIONS),
                     _parameters(conn, run, rules, with_seeds=True))
