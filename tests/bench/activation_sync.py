"""Benchmark: a 1,000,000-customer audience synced in full, then re-synced after 1 % changed.

`make bench` (or `python -m tests.bench.activation_sync`) creates a fresh database
(``trebol_bench_activation``) on the bench warehouse, makes a synthetic audience model
``audiences.aud_bench`` of BENCH_AUDIENCE customers (default 1 million; email, first name, offer)
and the ``marts.customer_segments`` rows the removals read, and for each destination:

- the **full sync**: stage the audience (timed apart), then ``run_sync`` of a sync that has never
  run: every member is an add;
- the **1 % re-sync**: the next day, 1 % of the customers have another offer; stage again, then
  ``run_sync``: 1 % are updates.

Destinations: the file destination (CSV; snapshot, change file, manifest per delivery) and the
Mailchimp fake (tests/fakes/mailchimp.py, in a process of its own so that it does not share this
process's interpreter lock; batch subscribe and segment calls of 500 members). Prints one JSON
line per destination: rows per second of the full sync, seconds of each, and the re-sync's share
of the full sync's time (target: at most 5 %). Uses the embedded warehouse under .trebol/bench
unless TREBOL_WAREHOUSE_DSN is set.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from trebol.activation import staging, sync
from trebol.activation.config import ActivationConfig, parse
from trebol.activation.destinations import file as file_destination
from trebol.activation.destinations.base import Connection, Destination
from trebol.settings import load_settings
from trebol.warehouse import address, ddl, embedded
from trebol.warehouse.embedded import create_database

DATABASE = "trebol_bench_activation"
DAY = date(2026, 6, 30)
API_KEY = "0123456789abcdef0123456789abcdef-us21"
LIST_ID = "bench"


def fresh_database(dsn: str) -> str:
    """A new, empty benchmark database on the server of ``dsn``; its DSN."""
    parts = address.dsn_parts(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(DATABASE)))
        create_database(conn, DATABASE)  # as the warehouse's own
    return address.build_dsn(address.DsnParts(parts.host, parts.port, parts.user, parts.password,
                                              DATABASE))


def make_audience(conn: psycopg.Connection, customers: int) -> None:
    """The synthetic audience and its customers' consent, as of DAY."""
    conn.execute("""create table audiences.aud_bench as
        select 'C' || lpad(i::text, 8, '0') as customer_key, %s::date as as_of_date,
               'person' || i || '@example.com' as email, 'Name' || (i %% 997) as first_name,
               'WELCOME10' as offer, true as has_marketing_consent
        from generate_series(1, %s) as i""", (DAY, customers))
    conn.execute("""create table marts.customer_segments as
        select customer_key, as_of_date, has_marketing_consent from audiences.aud_bench""")
    conn.execute("analyze audiences.aud_bench")


def next_day_with_one_percent_changed(conn: psycopg.Connection) -> None:
    conn.execute("""update audiences.aud_bench set as_of_date = as_of_date + 1,
        offer = case when right(customer_key, 2) = '00' then 'VIP20' else offer end""")
    conn.execute("update marts.customer_segments set as_of_date = as_of_date + 1")
    conn.execute("vacuum analyze audiences.aud_bench")


def config_for(destination: dict[str, Any], fields: dict[str, str]) -> ActivationConfig:
    return parse({"destinations": {"bench": destination},
                  "syncs": [{"name": "bench", "audience": "aud_bench", "destination": "bench",
                             "holdout_share": 0, "fields": fields}]})


def timed_sync(dsn: str, config: ActivationConfig, day: date,
               destination: Destination) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        staging.stage_audiences(conn, config, day)
        staged = time.perf_counter() - started
        conn.execute("vacuum analyze activation.audience_members")
        started = time.perf_counter()
        report = sync.run_sync(conn, config, "bench", day, f"bench-{day}", destination)
        seconds = time.perf_counter() - started
        conn.execute("vacuum analyze activation.sync_state, activation.sync_records")
    sent = report.added + report.changed + report.removed
    return {"stage_seconds": round(staged, 2), "sync_seconds": round(seconds, 2),
            "sent": sent, "failed": report.failed, "status": report.status}


def bench(dsn: str, customers: int, config: ActivationConfig,
          destination: Destination) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        ddl.bootstrap(conn)
        conn.execute("drop table if exists audiences.aud_bench, marts.customer_segments")
        conn.execute("truncate activation.sync_runs, activation.sync_state, "
                     "activation.audience_members, activation.staged_audiences cascade")
        make_audience(conn, customers)
    full = timed_sync(dsn, config, DAY, destination)
    with psycopg.connect(dsn, autocommit=True) as conn:
        next_day_with_one_percent_changed(conn)
    resync = timed_sync(dsn, config, DAY + timedelta(days=1), destination)
    return {"customers": customers, "full": full, "resync_1pct": resync,
            "full_rows_per_second": round(full["sent"] / full["sync_seconds"]),
            "resync_share_of_full": round(resync["sync_seconds"] / full["sync_seconds"], 4)}


def _serve_mailchimp(ready: Any) -> None:
    from tests.fakes.mailchimp import FakeMailchimp

    fake = FakeMailchimp(api_key=API_KEY)
    fake.add_list(LIST_ID, merge_fields={"FNAME": "text", "OFFER": "text"})
    with fake:
        ready.send(fake.base_url)
        ready.recv()  # until the benchmark is done


def main() -> None:
    os.environ.setdefault("TREBOL_HOME", str(load_settings({}).home / "bench"))
    settings = load_settings()
    customers = int(os.environ.get("BENCH_AUDIENCE", "1000000"))
    dsn = fresh_database(embedded.resolve_dsn(settings))
    fields = {"email": "email", "first_name": "first_name", "offer": "offer"}
    with tempfile.TemporaryDirectory() as folder:
        drop = file_destination.build("bench", Connection("", folder), {})
        result = bench(dsn, customers, config_for({"type": "file"}, fields), drop)
        size = sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())
    print(json.dumps({"benchmark": "activation_sync", "destination": "file", **result,
                      "bytes_written": size}))

    from trebol.activation.destinations import mailchimp

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve_mailchimp, args=(child,), daemon=True)
    server.start()
    try:
        base_url = parent.recv()
        spec = {"type": "mailchimp", "connection": "bench_mailchimp"}
        connection = Connection("bench_mailchimp", base_url, "bench", API_KEY, {"list_id": LIST_ID})
        destination = mailchimp.build("bench", connection, {"max_concurrency": 4})
        mapped = {"email_address": "email", "FNAME": "first_name", "OFFER": "offer"}
        result = bench(dsn, customers, config_for(spec, mapped), destination)
        print(json.dumps({"benchmark": "activation_sync", "destination": "mailchimp (fake)",
                          **result}))
    finally:
        parent.send("done")
        server.join(timeout=10)


if __name__ == "__main__":
    main()
