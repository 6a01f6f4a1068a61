"""Benchmark: Trébol's loader against a bare COPY of the same CSV file (the physical floor).

`make bench` (or `python -m tests.bench.load_throughput`) writes one transaction export of
BENCH_ROWS lines (default 10 million) with the columns of a typical user export
(`customer_id,transaction_id,transacted_at,amount`), then measures on the same warehouse:

- bare COPY: the file streamed into a typed table created beforehand, with no key, no checks,
  no audit (the floor);
- bare COPY into a table created in the COPY's own transaction (with ``wal_level = minimal``
  PostgreSQL then skips the WAL for it: what a bare COPY gains from the same trick as the
  loader's first load into an empty table);
- bare COPY into a table with the same primary key as the raw table;
- Trébol's loader (``load.extract_and_load``: checks, audit, quarantine, merge by key) of the
  file into an empty raw table (a first bulk load), and of a second file of as many new keys
  into that now-full table (a nightly incremental load).

With ``BENCH_VERSIONED=1`` the source declares ``version_column: transacted_at``: raw keeps
every version (key: transaction_id and transacted_at, each row dated ``_available_from``), the
path of the demo's versioned sources.

Prints one JSON line with the throughputs, the ratios to the bare COPY and the server settings
that matter for bulk loads. Uses the embedded warehouse under .trebol/bench unless
TREBOL_WAREHOUSE_DSN is set.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from trebol.extract import load
from trebol.extract.sources import Column, Source
from trebol.interval import Interval
from trebol.settings import load_settings
from trebol.warehouse import ddl, embedded

DAY = date(2026, 6, 29)
SERVER_SETTINGS = ("server_version", "wal_level", "shared_buffers", "max_wal_size",
                   "maintenance_work_mem")
SOURCE = Source(
    name="bench_transactions", kind="files", path="bench/transactions/*.csv",
    target="bench_transactions", primary_key=("transaction_id",), version_column=None,
    columns=(Column("customer_id", "text", "customer_id", required=True),
             Column("transaction_id", "text", "transaction_id", required=True),
             Column("transacted_at", "timestamptz", "transacted_at", required=True,
                    not_after_interval_end=True),
             Column("amount", "numeric", "amount", required=True, minimum=Decimal(-100000),
                    maximum=Decimal(100000))))


def write_export(path: Path, rows: int, first_id: int = 0) -> None:
    """A seeded export of ``rows`` transaction lines (reused when already there)."""
    marker = path.with_suffix(".rows")
    if path.exists() and marker.exists() and marker.read_text() == f"{rows}:{first_id}":
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(first_id + 1)
    day = file_day_of(path)
    with path.open("w") as handle:
        handle.write("customer_id,transaction_id,transacted_at,amount\n")
        for start in range(first_id, first_id + rows, 100_000):
            lines = []
            for n in range(start, min(first_id + rows, start + 100_000)):
                seconds = rng.randrange(86_400)
                lines.append(f"C{rng.randrange(1_000_000):07d},T{n:010d},"
                             f"{day.isoformat()}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:"
                             f"{seconds % 60:02d}+02:00,{rng.randrange(100, 50000) / 100:.2f}\n")
            handle.writelines(lines)
    marker.write_text(f"{rows}:{first_id}")


def file_day_of(path: Path) -> date:
    """The day in an export's name."""
    return date.fromisoformat(path.stem)


def bare_copy(conn: psycopg.Connection, path: Path, primary_key: bool = False,
              created_in_transaction: bool = False) -> float:
    """Seconds for COPY of the file (and the commit) into a typed table, with or without the
    primary key, created beforehand or in the COPY's own transaction."""
    conn.execute("drop table if exists raw.bench_bare")
    create = ("create table raw.bench_bare (customer_id text, transaction_id text"
              + (" primary key" if primary_key else "") + ", transacted_at timestamptz, amount numeric)")
    if not created_in_transaction:
        conn.execute(create)
    conn.execute("checkpoint")
    started = time.perf_counter()
    with conn.transaction():
        if created_in_transaction:
            conn.execute(create)
        with conn.cursor().copy("copy raw.bench_bare from stdin with (format csv, header true)") as copy, \
                path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                copy.write(block)
    seconds = time.perf_counter() - started
    conn.execute("drop table raw.bench_bare")
    return seconds


def bench_source() -> Source:
    """The benchmark's source: with a version column when ``BENCH_VERSIONED`` is 1."""
    if os.environ.get("BENCH_VERSIONED") == "1":
        return replace(SOURCE, version_column="transacted_at")
    return SOURCE


def trebol_load(conn: psycopg.Connection, sources_dir: Path, timezone: str, day: date) -> tuple[float, int]:
    """Seconds and rows loaded by Trébol's loader for the run that covers ``day``."""
    conn.execute("checkpoint")
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), ZoneInfo(timezone))
    started = time.perf_counter()
    results = load.extract_and_load(conn, bench_source(), sources_dir,
                                    Interval(end - timedelta(days=1), end), 0, timezone)
    seconds = time.perf_counter() - started
    assert all(r.rows_quarantined == 0 for r in results)
    return seconds, sum(r.rows_loaded for r in results)


def main() -> None:
    """Write the exports, time every load, print the figures."""
    os.environ.setdefault("TREBOL_HOME", str(load_settings({}).home / "bench"))
    settings = load_settings()
    rows = int(os.environ.get("BENCH_ROWS", "10000000"))
    folder = settings.sources_dir / "bench" / "transactions"
    first, second = folder / f"{DAY.isoformat()}.csv", folder / f"{(DAY + timedelta(days=1)).isoformat()}.csv"
    write_export(first, rows)
    write_export(second, rows, first_id=rows)
    dsn = embedded.resolve_dsn(settings)
    with psycopg.connect(dsn, autocommit=True) as conn:
        ddl.bootstrap(conn)
        conn.execute("drop table if exists raw.bench_transactions")
        ddl.ensure_raw_tables(conn, [bench_source()])
        conn.execute("delete from raw._load_audit where source = %s", (SOURCE.name,))
        conn.execute("delete from raw._quarantine where source = %s", (SOURCE.name,))
        server = {name: conn.execute(f"show {name}").fetchone()[0] for name in SERVER_SETTINGS}
        bare = bare_copy(conn, first)
        bare_new_table = bare_copy(conn, first, created_in_transaction=True)
        bare_pk = bare_copy(conn, first, primary_key=True)
        first_seconds, first_rows = trebol_load(conn, settings.sources_dir, settings.timezone, DAY)
        next_seconds, next_rows = trebol_load(conn, settings.sources_dir, settings.timezone,
                                              DAY + timedelta(days=1))
    assert first_rows == next_rows == rows
    print(json.dumps({
        "benchmark": "load_throughput", "rows_per_file": rows,
        "versioned": bench_source().keeps_versions,
        "file_mb": round(first.stat().st_size / 1e6),
        "bare_copy_rows_per_s": round(rows / bare),
        "bare_copy_table_created_in_transaction_rows_per_s": round(rows / bare_new_table),
        "bare_copy_with_primary_key_rows_per_s": round(rows / bare_pk),
        "trebol_first_load_rows_per_s": round(rows / first_seconds),
        "trebol_incremental_rows_per_s": round(rows / next_seconds),
        "first_load_vs_bare_copy": round(bare / first_seconds, 3),
        "first_load_vs_bare_copy_table_created_in_transaction": round(bare_new_table / first_seconds, 3),
        "incremental_vs_bare_copy": round(bare / next_seconds, 3),
        "incremental_vs_bare_copy_with_primary_key": round(bare_pk / next_seconds, 3),
        "server": server}))


if __name__ == "__main__":
    main()
