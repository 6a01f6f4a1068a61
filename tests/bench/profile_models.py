"""Profile of the slowest dbt models of a nightly run (issue 21): the models that took longest in
a run's ``<task>_run_results.json`` (the report folder of its date), each model's compiled SELECT
run again under ``EXPLAIN (ANALYZE, BUFFERS)`` on the warehouse it was built on, so the plan is
that of the same data.

``python -m tests.bench.profile_models REPORT_DIR [--top N] [--out FOLDER]``, with the run's
TREBOL_* environment (the benchmark's: ``TREBOL_HOME=.trebol/bench-pipeline/<size>/home``,
``TREBOL_WAREHOUSE_PORT``): prints one line per model (seconds in the run, seconds under
EXPLAIN ANALYZE, the plan's slowest node) and writes each plan to ``FOLDER/<model>.txt``
(default: ``REPORT_DIR/profiles``). A SELECT only reads: the marts are left as they are. An
incremental model's SELECT is its incremental branch, as the run compiled it.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from trebol.settings import load_settings
from trebol.warehouse import embedded

DBT_TASKS = ("dbt_build", "dbt_build_value", "rebuild_current_marts")
# a plan line's actual time: "(actual time=0.010..1234.567 rows=..." (the node's end, in ms)
ACTUAL = re.compile(r"actual time=[0-9.]+\.\.([0-9.]+) rows=(\d+) loops=(\d+)")


@dataclass(frozen=True)
class ModelRun:
    """One model node of a run: its name, its seconds in the run, its compiled SELECT."""

    name: str
    seconds: float
    compiled: str


def slowest_models(report_dir: Path, top: int) -> list[ModelRun]:
    """The ``top`` slowest model nodes of the run's dbt tasks."""
    models = []
    for task in DBT_TASKS:
        path = report_dir / f"{task}_run_results.json"
        if not path.exists():
            continue
        for result in json.loads(path.read_text())["results"]:
            if result["unique_id"].startswith("model.") and result.get("compiled_code"):
                models.append(ModelRun(result["unique_id"].split(".")[-1],
                                       float(result["execution_time"]), result["compiled_code"]))
    return sorted(models, key=lambda model: -model.seconds)[:top]


def slowest_node(plan: list[str]) -> str:
    """The plan node with the largest total time (its own time plus its children's: the root
    of the costly part), as a short line."""
    best, best_ms = "", -1.0
    for line in plan:
        match = ACTUAL.search(line)
        if match:
            total_ms = float(match.group(1)) * int(match.group(3))
            if total_ms > best_ms and "->" in line:
                best, best_ms = line.strip().removeprefix("-> ").split("  (")[0], total_ms
    return f"{best} ({best_ms / 1000:.1f} s)" if best else "?"


def explain(conn: psycopg.Connection, model: ModelRun) -> tuple[float, list[str]]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the model's SELECT: seconds and the plan's lines."""
    started = time.monotonic()
    rows = conn.execute(f"explain (analyze, buffers) {model.compiled}").fetchall()
    return time.monotonic() - started, [row[0] for row in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or args.report_dir / "profiles"
    out.mkdir(parents=True, exist_ok=True)
    dsn = embedded.resolve_dsn(load_settings())
    with psycopg.connect(dsn, autocommit=True) as conn:
        for model in slowest_models(args.report_dir, args.top):
            seconds, plan = explain(conn, model)
            (out / f"{model.name}.txt").write_text(
                f"-- {model.name}: {model.seconds:.1f} s in the run\n{model.compiled}\n\n"
                + "\n".join(plan) + "\n")
            print(f"{model.name}: {model.seconds:.1f} s in the run, {seconds:.1f} s explained; "
                  f"slowest node: {slowest_node(plan)}", flush=True)
    print(f"plans: {out}")


if __name__ == "__main__":
    main()
