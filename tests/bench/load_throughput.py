"""Benchmark: Trébol's loader against a bare COPY of the same CSV file (the physical floor).

`make bench` (or `python -m tests.bench.load_throughput`) writes one transaction export of
BENCH_ROWS lines (default 10 million) with the columns of a typical user export
(`customer_id,transaction_id,transacted_at,amount`), then measures on the same warehouse:

- bare COPY: the file streamed into a typed table with no key, no checks, no audit;
- Trébol: ``load.extract_and_load`` of the same file (checks, duplicate ranking, merge by key,
  quarantine, audit), into an empty raw table.

Prints one JSON line with both throughputs and their ratio. Uses the embedded warehouse under
.trebol/bench unless TREBOL_WAREHOUSE_DSN is set.
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from trebol import load, warehouse
from trebol.settings import load_settings
from trebol.sources import Column, Source

DAY = date(2026, 6, 29)
SOURCE = Source(
    name="bench_transactions", kind="files", path="bench/transactions/*.csv",
    target="bench_transactions", primary_key=("transaction_id",), version_column=None,
    columns=(Column("customer_id", "text", "customer_id", required=True),
             Column("transaction_id", "text", "transaction_id", required=True),
             Column("transacted_at", "timestamptz", "transacted_at", required=True,
                    not_after_interval_end=True),
             Column("amount", "numeric", "amount", required=True, minimum=Decimal(-100000),
                    maximum=Decimal(100000))))


def write_export(path: Path, rows: int) -> None:
    """A seeded export of ``rows`` transaction lines (reused when already there)."""
    if path.exists() and path.stat().st_size > 0 and path.with_suffix(".rows").exists() \
            and path.with_suffix(".rows").read_text() == str(rows):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    with path.open("w") as handle:
        handle.write("customer_id,transaction_id,transacted_at,amount\n")
        for start in range(0, rows, 100_000):
            lines = []
            for n in range(start, min(rows, start + 100_000)):
                seconds = rng.randrange(86_400)
                lines.append(f"C{rng.randrange(1_000_000):07d},T{n:010d},"
                             f"{DAY.isoformat()}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:"
                             f"{seconds % 60:02d}+02:00,{rng.randrange(100, 50000) / 100:.2f}\n")
            handle.writelines(lines)
    path.with_suffix(".rows").write_text(str(rows))


def bare_copy(conn: psycopg.Connection, path: Path) -> float:
    """Seconds for COPY of the file into a typed table without keys."""
    conn.execute("drop table if exists raw.bench_bare")
    conn.execute("create table raw.bench_bare (customer_id text, transaction_id text, "
                 "transacted_at timestamptz, amount numeric)")
    started = time.perf_counter()
    with conn.transaction(), conn.cursor().copy(
            "copy raw.bench_bare from stdin with (format csv, header true)") as copy, \
            path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            copy.write(block)
    return time.perf_counter() - started


def trebol_load(conn: psycopg.Connection, sources_dir: Path, timezone: str) -> tuple[float, int]:
    """Seconds and rows read for Trébol's loader on the same file, into an empty table."""
    conn.execute("drop table if exists raw.bench_transactions")
    conn.execute("delete from raw._load_audit where source = %s", (SOURCE.name,))
    conn.execute("delete from raw._quarantine where source = %s", (SOURCE.name,))
    end = datetime(2026, 6, 30, tzinfo=ZoneInfo(timezone))
    started = time.perf_counter()
    results = load.extract_and_load(conn, SOURCE, sources_dir, load.Interval(end - timedelta(days=1), end),
                                    0, timezone)
    return time.perf_counter() - started, sum(r.rows_read for r in results)


def main() -> None:
    """Write the export, time both loads, print the figures."""
    os.environ.setdefault("TREBOL_HOME", str(load_settings({}).home / "bench"))
    settings = load_settings()
    rows = int(os.environ.get("BENCH_ROWS", "10000000"))
    export = settings.sources_dir / "bench" / "transactions" / f"{DAY.isoformat()}.csv"
    write_export(export, rows)
    dsn = warehouse.resolve_dsn(settings)
    with psycopg.connect(dsn, autocommit=True) as conn:
        warehouse.bootstrap(conn)
        load.ensure_tables(conn, [SOURCE])
        bare_seconds = bare_copy(conn, export)
        conn.execute("drop table raw.bench_bare")
        trebol_seconds, read = trebol_load(conn, settings.sources_dir, settings.timezone)
    print(json.dumps({
        "benchmark": "load_throughput", "rows": rows, "file_mb": round(export.stat().st_size / 1e6),
        "bare_copy_seconds": round(bare_seconds, 1), "bare_copy_rows_per_s": round(rows / bare_seconds),
        "trebol_seconds": round(trebol_seconds, 1), "trebol_rows_per_s": round(read / trebol_seconds),
        "ratio": round(bare_seconds / trebol_seconds, 3)}))


if __name__ == "__main__":
    main()
