"""The bodies of the nightly DAG's tasks, one typed function per task.

Each takes what its task needs from the run (the data interval, the run id, a source name), never
the Airflow context: the DAG file reads those from Airflow and passes them in, and tests call the
same functions. Each opens the warehouse through the Airflow connection of its task's role
(``connections.ROLE_OF_TASK``) and returns a small JSON-able summary for XCom (counts, never data
or secrets).

A retry only helps what time can cure (a connection, a lock): an error no retry can cure — a
wrong setting or configuration file (``SettingsError``, ``ConfigError``), a value PostgreSQL
refuses (``DATA_ERRORS``), a CLV guard rail — fails the task at once with
``AirflowFailException`` (one line naming it), instead of holding the run back through the DAG's
retries.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from airflow.sdk.exceptions import AirflowFailException

from trebol import summary
from trebol.activation import consent_feedback, staging, sync
from trebol.activation.config import load_activation
from trebol.activation.destinations.base import DestinationRejected
from trebol.activation.endpoints import build_destination
from trebol.airflow.connections import task_conn_id, task_connection, warehouse_connection, warehouse_dsn
from trebol.clv.errors import CLVFitError
from trebol.erasure.suppression import Suppression
from trebol.extract import load
from trebol.extract.audit import iter_results
from trebol.extract.readers import DATA_ERRORS
from trebol.extract.run_dates import RunDateOutOfRange, check_run_date
from trebol.extract.sources import SourceConfigError, load_sources
from trebol.interval import Interval, local_midnight
from trebol.quality import gate
from trebol.quality.rules import load_rules
from trebol.report import timeline
from trebol.report.timeline import TaskSpan
from trebol.settings import ConfigError, SettingsError, load_settings
from trebol.warehouse import ddl
from trebol.warehouse.address import error_line

log = logging.getLogger(__name__)
# errors a retry meets again: the task fails without one (a CLV guard rail judges the same data
# the same way)
DETERMINISTIC_ERRORS: tuple[type[Exception], ...] = (SettingsError, ConfigError, CLVFitError,
                                                      DestinationRejected, RunDateOutOfRange,
                                                      *DATA_ERRORS)
P = ParamSpec("P")
R = TypeVar("R")


def final_on_deterministic_errors(task: Callable[P, R]) -> Callable[P, R]:
    """``task``, failing without retry (``AirflowFailException``) on a deterministic error; a
    connection or lock error still raises as it is, for Airflow to retry."""

    @functools.wraps(task)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return task(*args, **kwargs)
        except DETERMINISTIC_ERRORS as error:
            raise AirflowFailException(f"{type(error).__name__}: {error_line(error)}") from error

    return run


@final_on_deterministic_errors
def prepare_warehouse(interval: Interval) -> list[int]:
    """Check that the exports hold the run's day (a date outside them fails the run at once,
    naming the range: ``trebol.extract.run_dates``), then apply the warehouse's pending
    migrations and create the declared sources' raw tables; the migration versions applied
    (idempotent)."""
    settings, sources = load_settings(), load_sources().values()
    check_run_date(interval.as_of_date(settings.timezone), sources, settings.sources_dir)
    with task_connection("prepare_warehouse") as conn:
        applied = ddl.bootstrap(conn)
        ddl.ensure_raw_tables(conn, sources)
    return applied


@final_on_deterministic_errors
def pull_consent_feedback(interval: Interval) -> dict[str, int]:
    """Export each Mailchimp destination's opt-outs (unsubscribed, cleaned) into the source
    ``mailchimp_opt_outs``, dated the interval's day; contacts per destination (none without a
    Mailchimp destination). No warehouse: only destinations.yml, the destinations' Airflow
    connections and the sources folder. A 429 or 5xx left after the transport's retries raises
    for Airflow to retry; a wrong connection or a 4xx fails at once."""
    settings = load_settings()
    day = interval.as_of_date(settings.timezone) - timedelta(days=1)
    written = consent_feedback.pull_opt_outs(load_activation(), settings.sources_dir, day)
    for destination, count in written.items():
        log.info("%s: %d opt-out(s) exported for %s", destination, count, day.isoformat())
    return written


@final_on_deterministic_errors
def source_names() -> list[str]:
    """Names of the declared sources, one mapped extract task each."""
    return sorted(load_sources())


@final_on_deterministic_errors
def extract_load_source(source_name: str, interval: Interval) -> dict[str, int]:
    """Extract and load one source for the run's interval; returns the audit totals."""
    settings = load_settings()
    sources = load_sources()
    if source_name not in sources:
        raise SourceConfigError(f"sources.yml: source {source_name!r} is no longer declared")
    source = sources[source_name]
    with task_connection("extract_load") as conn:
        results = load.extract_and_load(conn, source, settings.sources_dir, interval,
                                        settings.lookback_days, settings.timezone,
                                        connect=warehouse_connection,
                                        suppression=Suppression.from_settings(settings))
    for line in iter_results(results):
        log.info("%s", line)
    return {
        "files": len(results),
        "rows_read": sum(r.rows_read for r in results),
        "rows_loaded": sum(r.rows_loaded for r in results),
        "rows_quarantined": sum(r.rows_quarantined for r in results),
        "rows_suppressed": sum(r.rows_suppressed for r in results),
    }


def _quality_run(task_id: str, interval: Interval, run_id: str) -> gate.QualityRun:
    settings = load_settings()
    day = interval.as_of_date(settings.timezone)
    return gate.QualityRun(dsn=warehouse_dsn(task_conn_id(task_id)), as_of_date=day,
                           interval_end=interval.end, run_id=run_id, timezone=settings.timezone,
                           expectations_dir=settings.expectations_dir,
                           report_dir=settings.report_dir(day))


@final_on_deterministic_errors
def check_raw_batches(interval: Interval, run_id: str) -> dict[str, int]:
    """Great Expectations suites on the batches the run loaded; an error raises and stops the push."""
    with task_connection("check_raw_batches") as conn:
        report = gate.check_raw_batches(conn, _quality_run("check_raw_batches", interval, run_id),
                                        list(load_sources().values()), load_rules())
    return report.counts()


@final_on_deterministic_errors
def stage_audiences(interval: Interval) -> dict[str, int]:
    """Stage every audience a sync sends for the run's date, for the gate to validate; members
    per audience (-1: refused, its syncs will stop with the reason)."""
    day = interval.as_of_date(load_settings().timezone)
    with task_connection("stage_audiences") as conn:
        staged = staging.stage_audiences(conn, load_activation(), day)
    for audience in staged:
        if audience.error:
            log.error("audience %s refused: %s", audience.audience, audience.error)
    return {audience.audience: audience.members if audience.status == "staged" else -1
            for audience in staged}


@final_on_deterministic_errors
def sync_names() -> list[str]:
    """The syncs of destinations.yml, one mapped push task each."""
    return [spec.name for spec in load_activation().syncs]


@final_on_deterministic_errors
def check_marts(interval: Interval, run_id: str) -> dict[str, int]:
    """Great Expectations suites on the marts and the staged audiences; an error raises and stops
    the push."""
    with task_connection("check_marts") as conn:
        report = gate.check_marts(conn, _quality_run("check_marts", interval, run_id),
                                   load_rules())
    return report.counts()


@final_on_deterministic_errors
def fit_clv(interval: Interval) -> dict[str, Any]:
    """Fit BG/NBD and Gamma-Gamma as of the run's date and write marts.customer_clv and
    marts.clv_model_runs; a guard-rail failure raises and leaves the previous predictions."""
    settings = load_settings()
    day = interval.as_of_date(settings.timezone)
    from trebol.clv import predictions  # pandas and scipy: only in the process that fits

    with task_connection("fit_clv") as conn:
        return predictions.run_clv(conn, day, settings, settings.report_dir(day))


@final_on_deterministic_errors
def push_sync(sync_name: str, interval: Interval, run_id: str) -> dict[str, Any]:
    """One sync's diff for the run's date to its destination; its report (counts, no data)."""
    settings = load_settings()
    day = interval.as_of_date(settings.timezone)
    config = load_activation()
    spec = config.sync(sync_name)
    destination = build_destination(config.destinations[spec.destination], settings.file_drop_dir)
    with task_connection("push_audiences") as conn:
        report = sync.run_sync(conn, config, sync_name, day, run_id, destination)
    result = report.as_dict()
    result.pop("examples")
    return result


@final_on_deterministic_errors
def find_newest_date(interval: Interval) -> str | None:
    """The as-of moment (ISO, the interval end of that date's run) to rebuild the current marts
    for when this run's date is older than the newest one the history holds (a backfill), so
    what BI reads never goes back in time; None (nothing to rebuild) for the newest date."""
    settings = load_settings()
    day = interval.as_of_date(settings.timezone)
    with task_connection("find_newest_date") as conn:
        newest = conn.execute("select max(as_of_date) from marts.segment_history").fetchone()[0]
    if newest is None or newest <= day:
        return None
    log.info("run date %s is older than the newest date done, %s: the current marts are rebuilt "
             "as of %s", day, newest, newest)
    return local_midnight(newest, settings.timezone).isoformat()


@final_on_deterministic_errors
def summarize(interval: Interval, run_id: str, task_states: dict[str, str],
              running: TaskSpan | None = None) -> dict[str, Any]:
    """Write the run summary (summary.json) and the run report (index.html, from the tasks'
    records, ``task_states`` for those that have none, and ``running``: this task) into the
    run's report folder, and return the summary; runs whatever the checks found."""
    settings = load_settings()
    day = interval.as_of_date(settings.timezone)
    report_dir = settings.report_dir(day)
    try:  # a failed run's report must still say what was not pushed: the syncs configured
        sync_names = [spec.name for spec in load_activation().syncs]
    except ConfigError as error:
        log.error("destinations.yml unreadable, the report lists no sync configured: %s", error)
        sync_names = []
    spans = [span for span in timeline.read_timeline(report_dir, run_id, task_states)
             if running is None or span.task_id != running.task_id] + ([running] if running else [])
    # imported here: its charts' Altair (≈1 s) would otherwise be imported by every task process
    from trebol.report import page

    with task_connection("summarize") as conn:
        result = summary.build_summary(conn, day, report_dir, run_id)
        page.write_report(conn, result, report_dir, interval, run_id, spans,
                          sorted(load_sources()), sync_names)
    return result
