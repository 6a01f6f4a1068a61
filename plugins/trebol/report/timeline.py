"""When each task of a nightly run ran, for the run report's timeline.

A task cannot read other task instances from Airflow's metadata (Airflow 3's task SDK gives
their states, not their times), so each task of ``trebol_nightly`` records its own: its success,
failure and retry callbacks (``record_task``) write one small JSON file per task instance into
the run's report folder, ``tasks/<run key>/``: what it is, its state, try, start and end. A
later try of the same task instance replaces its file. The summary task reads them back
(``read_timeline``) and adds the states Airflow holds for tasks that never ran (upstream failed,
skipped). A task killed before its callback (SIGKILL, a lost worker) has a state but no times.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TIMELINE_DIR = "tasks"


@dataclass(frozen=True)
class TaskSpan:
    """One task instance of the run: its label (``extract_load[crm_contacts]`` for a mapped one),
    state, try and, when it ran, its start and end (UTC)."""

    task_id: str
    map_index: int
    label: str
    state: str
    try_number: int | None = None
    start: datetime | None = None
    end: datetime | None = None

    @property
    def seconds(self) -> float | None:
        """Its duration, when it ran."""
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        for key in ("start", "end"):
            values[key] = values[key].isoformat() if values[key] else None
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> TaskSpan:
        times = {key: datetime.fromisoformat(values[key]) if values.get(key) else None
                 for key in ("start", "end")}
        return cls(**{**values, **times})


def _safe(name: str) -> str:
    """A run key or task id as one file or folder name (run ids hold ``:`` and ``+``)."""
    return re.sub(r"[^A-Za-z0-9._~-]", "_", name)


def timeline_dir(report_dir: Path, run_key: str) -> Path:
    """The folder of one run attempt's task records."""
    return report_dir / TIMELINE_DIR / _safe(run_key)


def label(task_id: str, map_index: int, rendered_map_index: str | None) -> str:
    """How the report names a task instance: the task id, and a mapped one's rendered index."""
    if map_index < 0:
        return task_id
    return f"{task_id}[{rendered_map_index or map_index}]"


def write_span(report_dir: Path, run_key: str, span: TaskSpan) -> Path:
    """Write (or replace) one task instance's record."""
    folder = timeline_dir(report_dir, run_key)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_safe(span.task_id)}.{span.map_index}.json"
    path.write_text(json.dumps(span.to_json()), encoding="utf-8")
    return path


def span_of(context: Any, state: str, now: datetime | None = None) -> TaskSpan:
    """The record of the task instance of an Airflow callback's (or a running task's) context."""
    ti = context["ti"]
    map_index = ti.map_index if ti.map_index is not None else -1
    return TaskSpan(task_id=ti.task_id, map_index=map_index,
                    label=label(ti.task_id, map_index, getattr(ti, "rendered_map_index", None)),
                    state=state, try_number=ti.try_number, start=ti.start_date,
                    end=now or datetime.now(UTC))


def record_task(context: Any, state: str) -> None:
    """Write the record of the callback's task instance into the run's report folder. Never
    raises: a record that cannot be written costs the report one bar, not the run."""
    from trebol.airflow.run_context import run_interval, run_key
    from trebol.settings import load_settings

    try:
        settings = load_settings()
        day = run_interval(context, settings.timezone).as_of_date(settings.timezone)
        write_span(settings.report_dir(day), run_key(context), span_of(context, state))
    except Exception as error:  # the run goes on; the report shows the task without times
        log.warning("task timeline not recorded: %s", error)


def on_success(context: Any) -> None:
    """A nightly task's ``on_success_callback``."""
    record_task(context, "success")


def on_failure(context: Any) -> None:
    """A nightly task's ``on_failure_callback`` (beside the alert's)."""
    record_task(context, "failed")


def on_retry(context: Any) -> None:
    """A nightly task's ``on_retry_callback``: the try that failed, until the next one ends."""
    record_task(context, "up_for_retry")


def read_timeline(report_dir: Path, run_key: str, states: dict[str, str]) -> list[TaskSpan]:
    """The run attempt's task instances: the recorded ones, and each task Airflow gives a state
    (``states``: ``task_id`` or ``task_id_<map index>``, as the task SDK names them) that has no
    record, without times; ordered by start, the ones that did not run last."""
    folder = timeline_dir(report_dir, run_key)
    spans = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        span = TaskSpan.from_json(json.loads(path.read_text(encoding="utf-8")))
        spans[span.task_id if span.map_index < 0 else f"{span.task_id}_{span.map_index}"] = span
    for key, state in states.items():
        if key in spans:
            continue
        task_id, _, index = key.rpartition("_")
        map_index = int(index) if task_id and index.isdigit() else -1
        task_id = task_id if map_index >= 0 else key
        spans[key] = TaskSpan(task_id=task_id, map_index=map_index,
                              label=label(task_id, map_index, None), state=state or "none")
    never = datetime.max.replace(tzinfo=UTC)
    return sorted(spans.values(), key=lambda span: (span.start or never, span.label))
