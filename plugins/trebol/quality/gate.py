"""The quality gate: the raw-batch and mart checks of a run, their record, and the stop.

Each check task validates its suites on the run's batches, records every outcome in
``marts.data_quality_results``, rebuilds the run's Data Docs and then, if an expectation of
severity error failed, raises ``QualityGateError`` naming each failure: the task fails and the
push, which needs both check tasks, does not run. Failed warnings are logged and the run goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from trebol.extract.sources import Source
from trebol.quality import gx_project, results
from trebol.quality.gx_project import CheckResult, Validation
from trebol.quality.rules import QualityRules

log = logging.getLogger(__name__)

QUALITY_SCHEMA = "quality"  # the dbt models under dbt_project/models/quality
RAW_BATCHES = Validation("raw_batches", QUALITY_SCHEMA, "raw_source_days", ("source",),
                         rows_required=False)
MART_VALIDATIONS = (
    Validation("marts_dim_customers", "marts", "dim_customers", ("customer_key",), True),
    Validation("marts_customer_segments", "marts", "customer_segments", ("customer_key",), True),
    Validation("marts_customer_clv", "marts", "customer_clv", ("customer_key",), True),
    Validation("marts_segment_drift", QUALITY_SCHEMA, "segment_size_drift",
               ("segmentation", "segment"), True),
    Validation("marts_value_drift", QUALITY_SCHEMA, "value_distribution_drift", ("as_of_date",),
               True),
    Validation("activation_audiences", QUALITY_SCHEMA, "audience_consent",
               ("audience", "customer_key"), False),
)


class QualityGateError(RuntimeError):
    """An expectation of severity error failed: activation must not run for this data."""


@dataclass(frozen=True)
class QualityRun:
    """Where and for which run the checks happen (the repr leaves the DSN out: it may hold a
    password)."""

    dsn: str = field(repr=False)
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


def raw_validations(sources: list[Source], expectations_dir: Path) -> list[Validation]:
    """The suite of each source that has one (``raw_<source>``: on the rows its batches loaded,
    dbt model ``quality.loaded_<target>``), and the batch-level suite of every source."""
    suites = gx_project.suite_names(expectations_dir)
    return [*(Validation(f"raw_{source.name}", QUALITY_SCHEMA, f"loaded_{source.target}",
                         source.primary_key, rows_required=False)
              for source in sources if f"raw_{source.name}" in suites),
            RAW_BATCHES]


BUILT_AS_OF = "built as of "  # the comment dbt writes on the raw suites' relations


def built_for_another_run(conn: psycopg.Connection, validation: Validation,
                          interval_end: datetime) -> str | None:
    """Why the relation a raw suite reads cannot be trusted for the run ending at
    ``interval_end`` (None: it can). Those relations hold the batches of the run dbt built them
    for, named in their comment (macro record_built_as_of): one left from an earlier run (a
    dbt_build that failed before it) would show that run's batches, or none."""
    name = f"{validation.schema}.{validation.table}"
    comment = conn.execute("select obj_description(to_regclass(%s), 'pg_class')",
                           (name,)).fetchone()[0] or ""
    built = comment.removeprefix(BUILT_AS_OF) if comment.startswith(BUILT_AS_OF) else ""
    try:
        if datetime.fromisoformat(built) == interval_end:
            return None
    except ValueError:
        built = "an unknown moment"
    return (f"{name} was built for the run as of {built}, not for this one "
            f"({interval_end.isoformat()}): dbt_build did not build it for this run, so its "
            "batches are not checked")


def _has_rows(conn: psycopg.Connection, validation: Validation, as_of_date: date) -> bool:
    query = sql.SQL("select exists (select from {} where as_of_date = %s)").format(
        sql.Identifier(validation.schema, validation.table))
    return bool(conn.execute(query, (as_of_date,)).fetchone()[0])


def _validate(conn: psycopg.Connection, run: QualityRun, stage: str,
              validations: list[Validation], parameters: dict[str, Any],
              built_for_the_run: bool = False) -> QualityReport:
    context = gx_project.open_context(run.expectations_dir, run.dsn, run.report_dir)
    checks: list[CheckResult] = []
    for validation in validations:
        if built_for_the_run and (problem := built_for_another_run(conn, validation,
                                                                   run.interval_end)):
            checks.append(CheckResult(validation.suite, "built_for_the_run", "built_for_the_run",
                                      None, "error", False, problem))
            continue
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
    return _validate(conn, run, "raw-batch", raw_validations(sources, run.expectations_dir),
                     rules.parameters(), built_for_the_run=True)


def check_marts(conn: psycopg.Connection, run: QualityRun, rules: QualityRules) -> QualityReport:
    """Validate the marts, what they are worth and their segment sizes against the previous run,
    and the staged audiences."""
    return _validate(conn, run, "mart", list(MART_VALIDATIONS), rules.parameters())
