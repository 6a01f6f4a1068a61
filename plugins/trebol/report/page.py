"""The run report: ``<reports>/<date>/index.html``, one page giving the state of the night,
readable offline with no server (its chart scripts are copied beside it, into ``assets/``).

What failed and what was not pushed come first; then the pipeline's timeline, the sources' rows
and quarantine reasons, the checks (linked into the run's Data Docs), the customers per segment
with the change since the previous snapshot, the RFM heat map, the CLV distribution with the
model's holdout calibration plots, the segment migration between the last two month ends and the
syncs. The facts come from ``trebol.report.facts``, the charts from ``trebol.report.charts``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import psycopg
from markupsafe import Markup

from trebol.interval import Interval
from trebol.quality.data_docs import DEFAULT_ASSETS
from trebol.report import charts, facts, report_path
from trebol.report.timeline import TaskSpan

log = logging.getLogger(__name__)
ASSETS = "assets"
# the scripts Altair 6's Vega-Lite specs need (expectations/data_docs_assets/package.json)
SCRIPTS = {"vega.min.js": "vega-6/build/vega.min.js",
           "vega-lite.min.js": "vega-lite-6/build/vega-lite.min.js",
           "vega-embed.min.js": "vega-embed-7/build/vega-embed.min.js"}
CLV_PLOTS = ("clv_holdout_by_frequency.png", "clv_cumulative_repeat_purchases.png")
FAILED_STATES = ("failed", "upstream_failed")
# the nightly tasks that run after the summary (dags/trebol_nightly.py)
AFTER_REPORT = ("find_newest_date", "rebuild_current_marts", "fail_run")


@dataclass(frozen=True)
class RunStatus:
    """What the page says first: whether the run failed, which tasks, which errors, which
    syncs were not pushed."""

    failed_tasks: list[str] = field(default_factory=list)
    check_errors: list[str] = field(default_factory=list)
    not_pushed: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.failed_tasks or self.check_errors or self.not_pushed)

    @property
    def word(self) -> str:
        return "failed" if self.failed else "succeeded"

    @property
    def css(self) -> str:
        return "failed" if self.failed else "ok"

    @property
    def headline(self) -> str:
        if not self.failed:
            return "The run succeeded: every task done, every check passed, every sync pushed."
        parts = []
        if self.failed_tasks:
            parts.append(f"{len(self.failed_tasks)} task(s) failed or did not run")
        if self.check_errors:
            parts.append(f"{len(self.check_errors)} quality error(s)")
        if self.not_pushed:
            parts.append(f"{len(self.not_pushed)} sync(s) not pushed")
        return "The run failed: " + "; ".join(parts) + "."


def run_status(spans: list[TaskSpan], summary: dict[str, Any], sync_names: list[str]) -> RunStatus:
    """The run's failures: tasks failed (or not run because one failed), the checks' errors, and
    the syncs of destinations.yml this run did not push successfully."""
    failed = [f"{span.label}: {span.state.replace('_', ' ')}" for span in spans
              if span.state in FAILED_STATES and span.task_id not in AFTER_REPORT]
    pushed = {sync["sync"] for sync in summary["syncs"] if sync["status"] == "succeeded"}
    return RunStatus(failed_tasks=failed, check_errors=list(summary["checks"]["errors"]),
                     not_pushed=[name for name in sync_names if name not in pushed])


def copy_scripts(report_dir: Path, assets_dir: Path = DEFAULT_ASSETS) -> list[str]:
    """Copy the chart scripts into ``report_dir/assets``; the names of those missing (without
    ``make install``'s npm packages the page still opens, its charts empty)."""
    modules, target = assets_dir / "node_modules", report_dir / ASSETS
    target.mkdir(parents=True, exist_ok=True)
    missing = []
    for name, source in SCRIPTS.items():
        if (modules / source).is_file():
            shutil.copyfile(modules / source, target / name)
        else:
            missing.append(source)
    return missing


def _script_json(spec: dict[str, Any]) -> Markup:
    """A spec as JSON safe inside a ``<script>`` element."""
    return Markup(json.dumps(spec).replace("</", "<\\/"))


def _tiles(summary: dict[str, Any], sources: list[dict[str, Any]]) -> list[dict[str, str]]:
    clv = summary.get("predicted_value") or {}
    checks = summary["checks"]
    return [
        {"value": f"{summary['identity']['customers']:,}", "label": "customers"},
        {"value": f"{sum(row['loaded'] for row in sources):,}", "label": "rows loaded this run"},
        {"value": f"{sum(row['quarantined'] for row in sources):,}", "label": "rows quarantined"},
        {"value": f"{checks['passed']} / {checks['passed'] + checks['failed']}", "label": "checks passed"},
        {"value": f"{sum(s['status'] == 'succeeded' for s in summary['syncs'])} / {len(summary['syncs'])}",
         "label": "syncs succeeded"},
        {"value": f"{clv.get('predicted_clv_total', 0):,.0f}", "label": "predicted CLV (margin)"},
    ]


def write_report(conn: psycopg.Connection, summary: dict[str, Any], report_dir: Path,
                 interval: Interval, run_key: str, spans: list[TaskSpan], source_names: list[str],
                 sync_names: list[str]) -> Path:
    """Write the run's ``index.html`` (and its scripts) into ``report_dir``; its path."""
    day = datetime.fromisoformat(summary["as_of_date"]).date()
    spans = [span for span in spans if span.task_id not in AFTER_REPORT]
    sources = facts.source_rows(conn, interval, source_names).to_dict("records")
    sizes = facts.segment_sizes(conn, day, previous := facts.previous_snapshot(conn, day))
    histogram = facts.clv_histogram(conn, day)
    migration_dates = facts.migration_dates(conn, day)
    specs = {"timeline": charts.task_timeline(spans), "rfm": charts.rfm_heatmap(facts.rfm_grid(conn, day))}
    for name in facts.SEGMENTATIONS:
        specs[f"segments-{name}"] = charts.segment_sizes(sizes, name)
    if not histogram.empty:
        specs["clv"] = charts.clv_distribution(histogram)
    if migration_dates:
        migration = facts.segment_migration(conn, migration_dates)
        for name in facts.SEGMENTATIONS:
            specs[f"migration-{name}"] = charts.migration_matrix(migration, name)
    if summary["syncs"]:
        specs["syncs"] = charts.sync_results(summary["syncs"])
    campaigns = summary.get("campaigns", [])
    if any(campaign["purchase_rate_lift"] is not None for campaign in campaigns):
        specs["campaigns"] = charts.campaign_lift(campaigns)
    data_docs = Path(summary["reports"]["data_docs"])
    environment = jinja2.Environment(loader=jinja2.PackageLoader("trebol.report"),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    page = environment.get_template("run_report.html").render(
        as_of_date=summary["as_of_date"], run_key=run_key,
        interval=f"{interval.start.isoformat()} to {interval.end.isoformat()}",
        written_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        marts_checksum=summary["marts_checksum"], status=run_status(spans, summary, sync_names),
        activation=summary["activation"], tiles=_tiles(summary, sources), spans=spans,
        after_report=f"After this report: {', '.join(AFTER_REPORT)} (a backfill's rebuild of the "
                     "current marts; fail_run marks the DAG run failed when a task failed).",
        sources=sources, reasons=facts.quarantine_reasons(conn, interval).to_dict("records"),
        checks=summary["checks"], suites=facts.suite_results(conn, run_key).to_dict("records"),
        data_docs=data_docs.relative_to(report_dir).as_posix() if data_docs.is_file() else None,
        segmentations=facts.SEGMENTATIONS, previous=previous, has_clv=not histogram.empty,
        plots=[name for name in CLV_PLOTS if (report_dir / name).is_file()],
        migration_dates=migration_dates,
        migration_note="" if migration_dates is None or all(day.day == 1 for day in migration_dates)
        else " (fewer than two month ends held: the last two snapshots)",
        syncs=summary["syncs"], campaigns=campaigns,
        specs={name: _script_json(spec) for name, spec in specs.items()})
    report_dir.mkdir(parents=True, exist_ok=True)
    if missing := copy_scripts(report_dir):
        log.warning("run report without charts: %s missing (make install)", ", ".join(missing))
    path = report_path(report_dir)
    path.write_text(page, encoding="utf-8")
    return path
