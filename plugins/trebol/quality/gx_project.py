"""Running the Great Expectations project of ``expectations/gx`` on one run's batches.

The project is a GX 1.x file data context: suites are reviewable JSON files in
``expectations/gx/expectations``, and one validation definition per suite (in
``validation_definitions``) ties it to a daily batch of a table or view of the warehouse, batched
on its ``as_of_date`` column. Three settings reach the project through GX's config substitution,
so nothing run-specific or secret is written to it: ``TREBOL_GX_WAREHOUSE_URL`` (the data
source), ``TREBOL_GX_RESULTS_DIR`` (validation results) and ``TREBOL_GX_DATA_DOCS_DIR`` (the Data
Docs site): both folders are in the run's report folder. The site is made to open offline
(``data_docs.localize``).

Validation definitions are run one by one rather than through a checkpoint: a checkpoint runs
all of its definitions, and GX raises ``NoAvailableBatchesError`` for a batch without rows (a
source that brought nothing new that day), which is normal for a raw batch and an error for a
mart. The Data Docs are built after the runs, as a checkpoint's ``UpdateDataDocsAction`` would.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from trebol.quality import data_docs
from trebol.warehouse.address import dsn_parts

DATASOURCE = "warehouse"
BATCH_DEFINITION = "as_of_date"
ENV_URL = "TREBOL_GX_WAREHOUSE_URL"
ENV_RESULTS = "TREBOL_GX_RESULTS_DIR"
ENV_DOCS = "TREBOL_GX_DATA_DOCS_DIR"
SEVERITIES = {"critical": "error", "warning": "warning", "info": "warning"}
SAMPLE = 3

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Validation:
    """A suite and the relation whose daily batch it validates."""

    suite: str
    schema: str
    table: str
    # columns that name an unexpected row in messages (GX's unexpected_index_column_names)
    row_names: tuple[str, ...]
    # a date without rows: an error (marts), or nothing to validate (a raw source with no news)
    rows_required: bool


@dataclass(frozen=True)
class CheckResult:
    """One expectation's outcome on one batch."""

    suite: str
    expectation: str
    expectation_id: str
    column: str | None
    severity: str
    success: bool
    observed_value: str

    @property
    def message(self) -> str:
        column = f"({self.column})" if self.column else ""
        return f"{self.suite}: {self.expectation}{column} [{self.severity}]: {self.observed_value}"


def data_docs_dir(report_dir: Path) -> Path:
    """The Data Docs site of a run: in the run's report folder."""
    return report_dir / "data_docs"


def results_dir(report_dir: Path) -> Path:
    """The GX validation results store of a run."""
    return report_dir / "gx_validations"


def sqlalchemy_url(dsn: str) -> str:
    """The warehouse DSN as the SQLAlchemy URL GX wants (psycopg 3 driver)."""
    parts = dsn_parts(dsn)
    from sqlalchemy.engine import URL

    query = {"host": parts.host} if parts.host.startswith("/") else {}
    url = URL.create("postgresql+psycopg", username=parts.user, password=parts.password or None,
                     host=None if query else parts.host, port=parts.port, database=parts.dbname,
                     query=query)
    return url.render_as_string(hide_password=False)


def open_context(expectations_dir: Path, dsn: str, report_dir: Path) -> Any:
    """The project's file data context, pointed at the warehouse and the run's report folder."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ[ENV_URL] = sqlalchemy_url(dsn)
    os.environ[ENV_RESULTS] = str(results_dir(report_dir))
    os.environ[ENV_DOCS] = str(data_docs_dir(report_dir))
    import great_expectations as gx

    return gx.get_context(mode="file", project_root_dir=str(expectations_dir))


def suite_names(expectations_dir: Path) -> set[str]:
    """The suites the project holds (one JSON file each in ``gx/expectations``)."""
    return {path.stem for path in (expectations_dir / "gx" / "expectations").glob("*.json")}


def _validation_definition(context: Any, validation: Validation) -> Any:
    """The stored validation definition of the suite; created (and saved) when missing."""
    import great_expectations as gx
    from great_expectations.exceptions import DataContextError

    name = f"validate_{validation.suite}"
    try:
        return context.validation_definitions.get(name)
    except (DataContextError, KeyError, ValueError):
        pass  # a suite new to the project: its asset, batch and definition are made and saved below
    source = context.data_sources.get(DATASOURCE)
    asset_name = f"{validation.schema}.{validation.table}"
    asset = next((a for a in source.assets if a.name == asset_name), None) or \
        source.add_table_asset(asset_name, table_name=validation.table,
                               schema_name=validation.schema)
    batch = next((b for b in asset.batch_definitions if b.name == BATCH_DEFINITION), None) or \
        asset.add_batch_definition_daily(BATCH_DEFINITION, column="as_of_date")
    return context.validation_definitions.add(gx.ValidationDefinition(
        name=name, data=batch, suite=context.suites.get(validation.suite)))


def _observed(result: dict[str, Any], row_names: tuple[str, ...]) -> str:
    if "unexpected_count" not in result:
        return str(result.get("observed_value"))
    count, total = result.get("unexpected_count") or 0, result.get("element_count") or 0
    text = f"{count:,} of {total:,} rows unexpected"
    rows = result.get("unexpected_index_list") or []
    if count and rows:
        shown = ["; ".join(f"{k}={v}" for k, v in row.items()) for row in rows[:SAMPLE]]
        text += ", e.g. " + " | ".join(shown)
    elif count:
        text += f", e.g. {result.get('partial_unexpected_list', [])[:SAMPLE]}"
    return text


def run_validation(context: Any, validation: Validation, as_of_date: date,
                   parameters: dict[str, Any], run_time: datetime) -> list[CheckResult]:
    """Validate the suite on the batch of ``as_of_date``; one result per expectation."""
    from great_expectations.core.run_identifier import RunIdentifier

    definition = _validation_definition(context, validation)
    outcome = definition.run(
        batch_parameters={"year": as_of_date.year, "month": as_of_date.month,
                          "day": as_of_date.day},
        expectation_parameters=parameters,
        result_format={"result_format": "COMPLETE", "partial_unexpected_count": SAMPLE,
                       "unexpected_index_column_names": list(validation.row_names)},
        run_id=RunIdentifier(run_name=f"as of {as_of_date.isoformat()}", run_time=run_time))
    checks = []
    for result in outcome.results:
        config = result.expectation_config
        severity = getattr(config.severity, "value", config.severity) or "critical"
        checks.append(CheckResult(
            suite=validation.suite, expectation=config.type, expectation_id=str(config.id),
            column=config.kwargs.get("column"), severity=SEVERITIES.get(str(severity), "error"),
            success=bool(result.success),
            observed_value=_observed(result.result or {}, validation.row_names)))
    return checks


def build_data_docs(context: Any, report_dir: Path) -> None:
    """Rebuild the run's Data Docs site from the validation results stored so far, with local
    copies of the web assets its pages would load from CDNs (so it opens offline)."""
    context.build_data_docs()
    left = data_docs.localize(data_docs_dir(report_dir))
    if left:
        log.warning("Data Docs still load %d asset(s) from the internet (run make install with npm "
                    "for offline copies): %s", len(left), ", ".join(left[:3]))
