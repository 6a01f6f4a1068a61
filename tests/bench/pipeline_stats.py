"""The pure parts of the whole-pipeline benchmark (``tests.bench.pipeline``): dbt timings grouped
by model folder, task instances grouped into stages, ratios to the floors, the markdown table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

# model folder (relative to dbt_project/models) -> the benchmark's stage; the first prefix wins
DBT_STAGES: tuple[tuple[str, str], ...] = (
    ("staging", "dbt staging"),
    ("intermediate/identity", "dbt identity"),
    ("intermediate/transactions", "dbt facts"),
    ("marts/fct_transactions", "dbt facts"),
    ("intermediate/customers", "dbt value marts"),
    ("marts/customers", "dbt value marts"),
    ("marts", "dbt other marts"),
    ("audiences", "dbt audiences"),
    ("quality", "dbt quality models"),
)
RESOURCE_STAGES = {"test": "dbt data tests", "seed": "dbt seeds", "unit_test": "dbt unit tests",
                   "operation": "dbt hooks", "exposure": "dbt exposures"}


def model_folders(models_dir: Path) -> dict[str, str]:
    """Each model's name -> its folder relative to ``models_dir`` (``marts`` for
    ``marts/fct_transactions.sql``; a model alone in its folder level keeps its own name)."""
    folders = {}
    for path in models_dir.rglob("*.sql"):
        relative = path.relative_to(models_dir).with_suffix("")
        folders[path.stem] = relative.as_posix()
    return folders


def dbt_stage(unique_id: str, folders: Mapping[str, str]) -> str:
    """The stage of one dbt node: tests, seeds by resource type, models by folder."""
    resource, _, name = unique_id.split(".", 2)
    if resource != "model":
        return RESOURCE_STAGES.get(resource, f"dbt {resource}s")
    folder = folders.get(name.split(".")[-1], "")
    return next((stage for prefix, stage in DBT_STAGES
                 if folder == prefix or folder.startswith(prefix + "/")), "dbt other models")


def _span(timings: Iterable[Mapping[str, Any]]) -> tuple[datetime, datetime] | None:
    moments = [(datetime.fromisoformat(t["started_at"].replace("Z", "+00:00")),
                datetime.fromisoformat(t["completed_at"].replace("Z", "+00:00")))
               for t in timings if t.get("started_at") and t.get("completed_at")]
    if not moments:
        return None
    return min(m[0] for m in moments), max(m[1] for m in moments)


def group_dbt_results(results: Iterable[Mapping[str, Any]],
                      folders: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """dbt ``run_results.json`` results grouped by stage: nodes, the sum of their execution
    times (``node_s``), the wall span from the first node's start to the last's end
    (``span_s``: nodes run side by side) and the rows the models wrote (``rows``)."""
    grouped: dict[str, dict[str, Any]] = {}
    for result in results:
        stage = grouped.setdefault(dbt_stage(result["unique_id"], folders),
                                   {"nodes": 0, "node_s": 0.0, "rows": 0, "timing": []})
        stage["nodes"] += 1
        stage["node_s"] += float(result.get("execution_time") or 0.0)
        if result["unique_id"].startswith(("model.", "seed.")):  # a test's rows are its failures
            rows = (result.get("adapter_response") or {}).get("rows_affected")
            stage["rows"] += rows if isinstance(rows, int) and rows > 0 else 0
            stage["timing"].extend(result.get("timing") or [])
    out = {}
    for name, stage in grouped.items():
        # models and seeds run side by side: their span; hooks (at the start and at the end)
        # and tests (interleaved with the models): the sum of their own times
        span = _span(stage.pop("timing"))
        stage["span_s"] = (round((span[1] - span[0]).total_seconds(), 2) if span
                           else round(stage["node_s"], 2))
        stage["node_s"] = round(stage["node_s"], 2)
        out[name] = stage
    return out


def merge_stages(*groups: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Stage figures of several dbt invocations added up (dbt_build and dbt_build_value)."""
    merged: dict[str, dict[str, float]] = {}
    for group in groups:
        for name, figures in group.items():
            into = merged.setdefault(name, {})
            for key, value in figures.items():
                into[key] = round(into.get(key, 0) + value, 2)
    return merged


def task_label(task_id: str, map_index: int, rendered: str | None) -> str:
    """A task instance's name: ``task`` or ``task[label]`` for a mapped one."""
    return task_id if map_index < 0 else f"{task_id}[{rendered or map_index}]"


def rate(rows: float, seconds: float) -> float | None:
    """Rows per second, None without time."""
    return round(rows / seconds) if seconds > 0 else None


def ratio(value: float, floor: float) -> float | None:
    """``value`` as a multiple of ``floor`` (None without a floor)."""
    return round(value / floor, 2) if floor > 0 else None


def targets(full_s: float, increment_s: float | None, copy_s: float, aggregate_s: float,
            peak_mb: float, checksums_equal: bool | None) -> dict[str, Any]:
    """The issue's targets, reported (not asserted): each with its value and whether it is met
    (an increment not run yet: no value, not met)."""
    floor = copy_s + aggregate_s
    full_ratio = ratio(full_s, floor)
    increment_share = ratio(increment_s, full_s) if increment_s is not None else None
    return {
        "full_build_over_copy_plus_aggregate": {"value": full_ratio, "target": 8.0,
                                                "met": full_ratio is not None and full_ratio <= 8.0},
        "increment_over_full_build": {"value": increment_share, "target": 0.10,
                                      "met": increment_share is not None and increment_share <= 0.10},
        "peak_memory_mb": {"value": round(peak_mb), "target": 4096, "met": peak_mb < 4096},
        "same_marts_increment_vs_scratch": {"value": checksums_equal, "target": True,
                                            "met": checksums_equal is True},
    }


def differing_marts(run: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """The marts whose digests differ between two runs (their ``marts_digests``; a mart only one
    of them has counts as differing)."""
    digests, others = run.get("marts_digests") or {}, other.get("marts_digests") or {}
    return sorted(name for name in digests.keys() | others.keys()
                  if digests.get(name) != others.get(name))


def markdown_table(rows: Iterable[Mapping[str, Any]], columns: Iterable[str]) -> str:
    """A markdown table of ``rows`` with ``columns`` (missing values blank)."""
    columns = list(columns)

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:,.2f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
