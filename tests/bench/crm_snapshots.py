"""Benchmark: the first load of the CRM contacts snapshots (``kind: snapshot``) at scale.

`python -m tests.bench.crm_snapshots` simulates BENCH_CUSTOMERS people (default 20,000) over
BENCH_DAYS days (default 180) with the simulator (``trebol simulate``; BENCH_RETENTION_DAYS: the
CRM drop folder keeps only that many newest daily snapshots, default all), into a folder of its
own under the bench home (reused when the spec is the same), then loads the source
``crm_contacts`` as the pipeline's first run does (``load.extract_and_load`` for the interval
ending on the simulation's end date: every snapshot, oldest first, in one transaction) into a
fresh database ``trebol_bench_crm`` on the bench warehouse, and prints one JSON line: the
snapshots and rows read, the history's size, the load's seconds and rows per second, the
seconds per snapshot of the first and the last tenth of the snapshots (from the load audit: a
cost that grows with the history shows there), the history's md5 (the same data gives the same
history, whatever the version of the loader), and a bare COPY of the same files' lines into a
one-column text table (the floor: no fields, no key, no checks).

BENCH_PROFILE=FILE writes a cProfile of the load to FILE (``python -m pstats FILE``);
BENCH_EXPLAIN=1 logs the plan of every statement of the load over 20 ms with auto_explain
(ANALYZE, BUFFERS) in the server's log. Uses the embedded warehouse under .trebol/bench unless
TREBOL_WAREHOUSE_DSN is set.
"""

from __future__ import annotations

import cProfile
import json
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from trebol.demo import SimulationSpec, simulate
from trebol.extract import load
from trebol.extract.sources import load_sources
from trebol.interval import Interval
from trebol.settings import load_settings
from trebol.warehouse import address, ddl, embedded
from trebol.warehouse.embedded import create_database

DATABASE = "trebol_bench_crm"
SOURCE = "crm_contacts"


def bench_database(admin_dsn: str) -> str:
    """(Re)create the benchmark's own database on the warehouse's server; its DSN."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(DATABASE)))
        create_database(conn, DATABASE)  # as the warehouse's own
    parts = address.dsn_parts(admin_dsn)
    return address.build_dsn(address.DsnParts(parts.host, parts.port, parts.user, parts.password,
                                              DATABASE))


def bare_copy(conn: psycopg.Connection, files: list[Path]) -> float:
    """Seconds to COPY every file's lines into a one-column text table (no parsing into fields,
    no key, no checks; the injected faults' lines too): the floor."""
    conn.execute("drop table if exists bench_bare")
    conn.execute("create table bench_bare (line text)")
    started = time.perf_counter()
    with conn.transaction():
        for path in files:
            with conn.cursor().copy("copy bench_bare from stdin with (format csv, header true, "
                                    "delimiter e'\\x01', quote e'\\x02', encoding 'LATIN1')") as copy, \
                    path.open("rb") as handle:
                for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                    copy.write(block)
    seconds = time.perf_counter() - started
    conn.execute("drop table bench_bare")
    return seconds


def main() -> None:
    """Simulate (or reuse), load the snapshots once, print the figures."""
    os.environ.setdefault("TREBOL_HOME", str(load_settings({}).home / "bench"))
    settings = load_settings()
    customers = int(os.environ.get("BENCH_CUSTOMERS", "20000"))
    days = int(os.environ.get("BENCH_DAYS", "180"))
    retention = int(os.environ["BENCH_RETENTION_DAYS"]) if os.environ.get("BENCH_RETENTION_DAYS") else None
    spec = SimulationSpec(customers, days, settings.demo_date, settings.demo_seed, settings.timezone,
                          crm_snapshot_retention_days=retention)
    out = settings.sources_dir / "crm_snapshots" / f"{customers}x{days}" / f"kept-{retention or 'all'}"
    started = time.perf_counter()
    simulate(spec, out, None)
    simulated = time.perf_counter() - started
    source = load_sources()[SOURCE]
    files = load.source_files(source, out)
    tz = ZoneInfo(settings.timezone)
    end = datetime(spec.end_date.year, spec.end_date.month, spec.end_date.day, tzinfo=tz)
    dsn = bench_database(embedded.resolve_dsn(settings))
    profile = os.environ.get("BENCH_PROFILE")
    with psycopg.connect(dsn, autocommit=True) as conn:
        ddl.bootstrap(conn)
        ddl.ensure_raw_tables(conn, [source], settings.timezone)
        floor = bare_copy(conn, files)
        if os.environ.get("BENCH_EXPLAIN") == "1":
            for setting in ("session_preload_libraries = 'auto_explain'",
                            "auto_explain.log_min_duration = '20ms'", "auto_explain.log_analyze = on",
                            "auto_explain.log_buffers = on", "auto_explain.log_nested_statements = on"):
                conn.execute(f"set {setting}")
            conn.execute("load 'auto_explain'")
        conn.execute("checkpoint")
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        results = load.extract_and_load(conn, source, out, Interval(end - timedelta(days=1), end), 0,
                                        settings.timezone)
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        seconds = time.perf_counter() - started
        history, open_records, checksum = conn.execute(sql.SQL(
            "select count(*), count(*) filter (where _valid_to is null), "
            "md5(string_agg(t::text, '|' order by t::text)) from {} as t").format(
                ddl.raw_table(source))).fetchone()
        spans = [row[0] for row in conn.execute(
            "select extract(epoch from finished_at - started_at)::float from raw._load_audit "
            "where source = %s order by file_day", (SOURCE,)).fetchall()]
    tenth = max(len(spans) // 10, 1)
    rows = sum(r.rows_read for r in results)
    print(json.dumps({
        "benchmark": "crm_snapshots", "customers": customers, "days": days, "retention_days": retention,
        "snapshots": len(results), "rows_read": rows,
        "rows_quarantined": sum(r.rows_quarantined for r in results),
        "history_rows": history, "open_records": open_records, "history_md5": checksum,
        "simulate_s": round(simulated, 1), "load_s": round(seconds, 1),
        "rows_per_s": round(rows / seconds), "bare_copy_s": round(floor, 1),
        "load_vs_bare_copy": round(seconds / floor, 1),
        "first_tenth_s_per_snapshot": round(sum(spans[:tenth]) / tenth, 3) if spans else None,
        "last_tenth_s_per_snapshot": round(sum(spans[-tenth:]) / tenth, 3) if spans else None}))


if __name__ == "__main__":
    main()
