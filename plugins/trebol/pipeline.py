"""The bodies of the nightly DAG's tasks; each takes the Airflow task context it runs in."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from trebol import activation, clv_marts, load, summary, warehouse
from trebol.orchestration import (
    as_of_date,
    interval_from,
    report_dir,
    warehouse_connection,
    warehouse_dsn,
)
from trebol.quality import gate, results
from trebol.quality.rules import load_rules
from trebol.settings import load_settings
from trebol.sources import load_sources

log = logging.getLogger(__name__)


def prepare_warehouse() -> None:
    """Create the layer schemas, raw tables, the CLV tables (dbt's source clv) and activation
    tables (idempotent)."""
    with warehouse_connection() as conn:
        warehouse.bootstrap(conn)
        load.ensure_tables(conn, load_sources().values())
        activation.ensure_tables(conn)
        results.ensure_table(conn)


def source_names() -> list[str]:
    """Names of the declared sources, one mapped extract task each."""
    return sorted(load_sources())


def extract_load_source(source_name: str, context: Any) -> dict[str, int]:
    """Extract and load one source for the run's interval; returns the audit totals."""
    settings = load_settings()
    source = load_sources()[source_name]
    with warehouse_connection() as conn:
        results = load.extract_and_load(conn, source, settings.sources_dir, interval_from(context),
                                        settings.lookback_days, settings.timezone,
                                        connect=warehouse_connection)
    for line in load.iter_results(results):
        log.info("%s", line)
    return {
        "files": len(results),
        "rows_read": sum(r.rows_read for r in results),
        "rows_loaded": sum(r.rows_loaded for r in results),
        "rows_quarantined": sum(r.rows_quarantined for r in results),
    }


def _quality_run(context: Any) -> gate.QualityRun:
    settings = load_settings()
    interval = interval_from(context)
    day = as_of_date(interval, settings.timezone)
    return gate.QualityRun(dsn=warehouse_dsn(), as_of_date=day, interval_end=interval.end,
                           run_id=context["run_id"], timezone=settings.timezone,
                           expectations_dir=settings.expectations_dir,
                           report_dir=report_dir(settings, day))


def check_raw_batches(context: Any) -> dict[str, int]:
    """Great Expectations suites on the batches the run loaded; an error raises and stops the push."""
    with warehouse_connection() as conn:
        report = gate.check_raw_batches(conn, _quality_run(context), list(load_sources().values()),
                                        load_rules())
    return report.counts()


def stage_audiences(context: Any) -> dict[str, int]:
    """Write the members of every audience for the run's date, for the gate to validate."""
    settings = load_settings()
    day = as_of_date(interval_from(context), settings.timezone)
    with warehouse_connection() as conn:
        return activation.stage_audiences(conn, activation.load_audiences(), day)


def check_marts(context: Any) -> dict[str, int]:
    """Great Expectations suites on the marts and the staged audiences; an error raises and stops
    the push."""
    with warehouse_connection() as conn:
        report = gate.check_marts(conn, _quality_run(context), load_rules())
    return report.counts()


def fit_clv(context: Any) -> dict[str, Any]:
    """Fit BG/NBD and Gamma-Gamma as of the run's date and write marts.customer_clv and
    marts.clv_model_runs; a guard-rail failure raises and leaves the previous predictions."""
    settings = load_settings()
    day = as_of_date(interval_from(context), settings.timezone)
    with warehouse_connection() as conn:
        return clv_marts.run_clv(conn, day, settings, report_dir(settings, day))


def push_audiences(context: Any) -> list[dict[str, Any]]:
    """Push every configured audience for the run's as-of date."""
    settings = load_settings()
    day = as_of_date(interval_from(context), settings.timezone)
    with warehouse_connection() as conn:
        return [asdict(activation.push_audience(conn, audience, day, settings.file_drop_dir))
                for audience in activation.load_audiences()]


def summarize(context: Any) -> dict[str, Any]:
    """Write the run summary (summary.json) and return it; runs whatever the checks found."""
    settings = load_settings()
    day = as_of_date(interval_from(context), settings.timezone)
    with warehouse_connection() as conn:
        return summary.build_summary(conn, day, report_dir(settings, day), context["run_id"])
