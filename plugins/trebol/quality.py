"""Great Expectations checks on the marts, run from a plain Airflow task.

The GX project is the file data context in ``expectations/gx``: suites are reviewable JSON files
there, and the data source reads its connection string from the environment variable
``TREBOL_GX_WAREHOUSE_URL`` (GX config substitution), so no secret is written to disk. Data Docs
and validation results go to ``expectations/gx/uncommitted`` (git-ignored); a JSON summary of each
run goes to the reports folder.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from trebol.warehouse import dsn_parts

DATASOURCE = "warehouse"
URL_ENV = "TREBOL_GX_WAREHOUSE_URL"
# suite name -> (schema, table) it validates; the suite file is expectations/gx/expectations/<name>.json
MART_SUITES: dict[str, tuple[str, str]] = {
    "marts_customer_segments": ("marts", "customer_segments"),
}

log = logging.getLogger(__name__)


class QualityGateError(RuntimeError):
    """A data-quality check failed: activation must not run for this data."""


@dataclass(frozen=True)
class CheckResult:
    """One expectation's outcome."""

    suite: str
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int | None


@dataclass(frozen=True)
class QualityReport:
    """Outcome of a checkpoint run."""

    checks: list[CheckResult]
    data_docs_dir: str
    report_file: str

    @property
    def passed(self) -> int:
        return sum(check.success for check in self.checks)

    @property
    def failed(self) -> int:
        return sum(not check.success for check in self.checks)


def data_docs_dir(expectations_dir: Path) -> Path:
    """Where GX writes the Data Docs site of the project."""
    return expectations_dir / "gx" / "uncommitted" / "data_docs" / "local_site"


def sqlalchemy_url(dsn: str) -> str:
    """The warehouse DSN as the SQLAlchemy URL GX wants (psycopg 3 driver)."""
    parts = dsn_parts(dsn)
    from sqlalchemy.engine import URL

    query = {"host": parts.host} if parts.host.startswith("/") else {}
    url = URL.create("postgresql+psycopg", username=parts.user, password=parts.password or None,
                     host=None if query else parts.host, port=parts.port, database=parts.dbname,
                     query=query)
    return url.render_as_string(hide_password=False)


def _context(expectations_dir: Path):
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx.get_context(mode="file", project_root_dir=str(expectations_dir))


def _get_or_add(factory, get, name: str):
    """The stored GX object ``name``, or a new one from ``factory`` when the project has none.

    Reusing stored objects keeps their ids, so a run leaves the committed files unchanged."""
    from great_expectations.exceptions import DataContextError

    try:
        return get(name)
    except (DataContextError, KeyError, ValueError):
        return factory()


def _checkpoint(context, suite_name: str, schema: str, table: str):
    import great_expectations as gx

    source = context.data_sources.all().get(DATASOURCE) or context.data_sources.add_postgres(
        DATASOURCE, connection_string="${" + URL_ENV + "}")
    asset_name = f"{schema}.{table}"
    asset = next((a for a in source.assets if a.name == asset_name), None) or \
        source.add_table_asset(asset_name, table_name=table, schema_name=schema)
    batch = next((b for b in asset.batch_definitions if b.name == "whole_table"), None) or \
        asset.add_batch_definition_whole_table("whole_table")
    suite = context.suites.get(suite_name)
    definition = _get_or_add(
        lambda: context.validation_definitions.add(gx.ValidationDefinition(
            name=f"validate_{suite_name}", data=batch, suite=suite)),
        context.validation_definitions.get, f"validate_{suite_name}")
    return _get_or_add(
        lambda: context.checkpoints.add(gx.Checkpoint(
            name=f"checkpoint_{suite_name}", validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
            result_format="SUMMARY")),
        context.checkpoints.get, f"checkpoint_{suite_name}")


def run_mart_checks(dsn: str, expectations_dir: Path, report_dir: Path) -> QualityReport:
    """Validate every mart suite; write a JSON summary; raise QualityGateError on a failure."""
    os.environ[URL_ENV] = sqlalchemy_url(dsn)
    context = _context(expectations_dir)
    checks: list[CheckResult] = []
    for suite_name, (schema, table) in MART_SUITES.items():
        result = _checkpoint(context, suite_name, schema, table).run()
        for validation in result.run_results.values():
            for outcome in validation.results:
                config = outcome.expectation_config
                checks.append(CheckResult(
                    suite=suite_name, expectation=config.type,
                    column=config.kwargs.get("column"), success=bool(outcome.success),
                    unexpected_count=(outcome.result or {}).get("unexpected_count")))
    report_dir.mkdir(parents=True, exist_ok=True)
    report_file = report_dir / "quality.json"
    report = QualityReport(checks, str(data_docs_dir(expectations_dir)), str(report_file))
    report_file.write_text(json.dumps({"passed": report.passed, "failed": report.failed,
                                       "checks": [asdict(c) for c in checks]}, indent=2))
    if report.failed:
        failed = [f"{c.suite}:{c.expectation}({c.column or ''})" for c in checks if not c.success]
        raise QualityGateError(f"{report.failed} data-quality check(s) failed: {', '.join(failed)}")
    return report
