"""Benchmark: simulate demo sources and time extracting + COPY-loading them into raw.

Run with `make bench` (embedded warehouse under .trebol/bench, or TREBOL_WAREHOUSE_DSN).
Prints one JSON line: customers, rows read, seconds, rows per second.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from trebol import load, warehouse
from trebol.settings import load_settings
from trebol.simulate import SimulationSpec, simulate
from trebol.sources import load_sources


def main() -> None:
    """Simulate, load every source for the demo date, report throughput."""
    os.environ.setdefault("TREBOL_HOME", str(load_settings({}).home / "bench"))
    settings = load_settings()
    customers = int(os.environ.get("BENCH_CUSTOMERS", "50000"))
    spec = SimulationSpec(customers, settings.demo_days, settings.demo_date, 1, settings.timezone)
    simulate(spec, settings.sources_dir)
    dsn = warehouse.resolve_dsn(settings)
    end = datetime.combine(settings.demo_date, datetime.min.time(), ZoneInfo(settings.timezone))
    interval = load.Interval(end - timedelta(days=1), end)
    with psycopg.connect(dsn, autocommit=True) as conn:
        warehouse.bootstrap(conn)
        conn.execute("drop table if exists raw._load_audit, raw._quarantine, "
                     "raw.shop_transactions, raw.crm_contacts")
        started = time.perf_counter()
        results = [r for source in load_sources().values()
                   for r in load.extract_and_load(conn, source, settings.sources_dir, interval,
                                                  settings.lookback_days, settings.timezone)]
        seconds = time.perf_counter() - started
    rows = sum(r.rows_read for r in results)
    print(json.dumps({"benchmark": "extract_and_load", "customers": customers, "files": len(results),
                      "rows_read": rows, "seconds": round(seconds, 2),
                      "rows_per_second": round(rows / seconds)}))
    if settings.uses_embedded_warehouse:
        warehouse.stop_embedded(settings)


if __name__ == "__main__":
    main()
