"""Benchmark: `dbt build` of the customer value marts against the bare aggregate query (the floor).

`make bench` (or `python -m tests.bench.value_marts`) fills a dedicated database
(``trebol_bench_value``) on the bench warehouse with the relations the value marts read, made
synthetically in SQL at scale: BENCH_CUSTOMERS customers (default 1 million) in
marts.dim_customers and marts.customer_source_keys, BENCH_TRANSACTIONS lines (default 10 million)
in marts.fct_transactions over the two years before the as-of date (tickets of 2 or 3 lines,
deterministic pseudo-random values from hashes: customers drawn with a power-law skew, so many
one-off buyers and a few heavy repeaters; 70 % store, 30 % online; 3 % returns; 3 % anonymous
store tickets), a few CRM cases in staging.stg_crm__cases, the CLV predictions of the day in
marts.customer_clv (pseudo-random, one per customer with a purchase: what fit_clv writes before
the value marts are built, so customer_value ranks them), and the seeds (`dbt seed`).
fct_transactions is left as the nightly runs leave it: with the indexes its model declares (read
from the parsed project), vacuumed, then the last day's transactions deleted and inserted again
(an incremental run's delete and insert: their pages are not all-visible until the next vacuum).
The data is reused by the next run when its size, generator and indexes are the same.

It then measures on that data:

- the floor, two ways: ``select customer_key, max(transacted_at), count(*), sum(net_amount) from
  marts.fct_transactions group by customer_key`` materialized (create table as, as dbt's table
  materialization writes a model: the stricter floor, the one the ratios below use) and the same
  query with its rows streamed to the client (COPY, discarded: the query as a client runs it);
- ``dbt run`` of int_customers__transaction_totals (the one pass over the lines),
  int_customers__high_potential_thresholds (the day's predicted CLV threshold), customer_rfmt,
  customer_value, customer_segments, segment_history and segment_migration (models only), first
  as of the day before (segment_history starts);
- then BENCH_ROUNDS rounds (default 3) of: both floors, ``dbt run`` of the selection as of the
  day (the nightly steady state: segment_history replaces its day's snapshot, and
  segment_migration compares with the day before), ``dbt build`` of it (models and their data
  tests: the nightly build, whose unit tests run in CI). Each round's ratio compares times taken
  side by side (on a shared machine the speed drifts within minutes); the median round is
  reported with its model times. Each round starts settled (the tables the previous round built
  vacuumed and analyzed, a checkpoint), as the day between two nightly runs leaves them;
- one ``dbt build`` with the unit tests too, for reference.

Wall times include dbt's start-up (the project is parsed once beforehand, so partial parsing
applies); the model times dbt reports are given too. Prints one JSON line with the sizes, the
times, the ratios to both floors and the server settings. Uses the embedded
warehouse under .trebol/bench unless TREBOL_WAREHOUSE_DSN is set (the database is created on the
same server).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from trebol.settings import load_settings
from trebol.warehouse import address, ddl, embedded

DAY = date(2026, 6, 30)
DATABASE = "trebol_bench_value"
GENERATOR_VERSION = 4
PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
SELECTION = ("int_customers__transaction_totals", "int_customers__high_potential_thresholds",
             "customer_rfmt", "customer_value",
             "customer_segments", "segment_history", "segment_migration")
SERVER_SETTINGS = ("server_version", "work_mem", "hash_mem_multiplier", "shared_buffers",
                   "max_parallel_workers_per_gather")
FLOOR_QUERY = ("select customer_key, max(transacted_at) as last_transacted_at, count(*) as lines,"
               " sum(net_amount) as net_amount from marts.fct_transactions group by customer_key")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
QUIET = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "DO_NOT_TRACK": "1"}
# as the nightly DAG builds (trebol.airflow.dbt_build.dbt_build_operator): unit tests run in CI
NIGHTLY = {"DBT_EXCLUDE_RESOURCE_TYPES": "unit_test"}

# u(t, k): the k-th uniform pseudo-random number in [0, 1) of the integer t (a hash, so the same
# sizes always give the same data).
UNIFORM = "((hashint8extended({t}, {k}) & 2147483647)::float8 / 2147483648.0)"


def uniform(t: str, k: int) -> str:
    return UNIFORM.format(t=t, k=k)


def customer_key(n: str) -> str:
    """Customer keys shaped like the model's: 'C' and 16 hex digits of an md5."""
    return f"'C' || substr(md5('crm:' || {n}), 1, 16)"


def generation_statements(customers: int, lines: int, as_of_at: datetime, timezone: str,
                          fct_indexes: list[list[str]]) -> list[str]:
    """The SQL that creates the inputs of the value marts: dim_customers, customer_source_keys,
    fct_transactions (with the indexes of its model, ``fct_indexes``: each a list of columns) and
    stg_crm__cases, with the columns and types of their contracts."""
    start = as_of_at - timedelta(days=730)
    day_before = as_of_at - timedelta(days=1)
    return [
        "drop table if exists marts.fct_transactions, marts.dim_customers,"
        " marts.customer_source_keys, staging.stg_crm__cases cascade",
        # Tickets: line n belongs to ticket (n - 1) * 2 / 5 (tickets of 2 or 3 lines). A ticket's
        # customer is 1 + floor(customers * u^3): a power law, where the lowest numbers buy most.
        f"""
        create table marts.fct_transactions as
        with lines as (
            select n, t, n - 1 - (5 * t + 1) / 2 as line_in_ticket
            from generate_series(1::bigint, {lines}::bigint) as n,
                lateral (select (n - 1) * 2 / 5 as t) as ticket_numbers
        ),
        tickets as (
            select
                n, t, line_in_ticket,
                {uniform('t', 1)} < 0.70 as is_store,
                {uniform('t', 2)} < 0.03 as is_return,
                {uniform('t', 3)} < 0.03 as is_anonymous,
                1 + floor({customers} * power({uniform('t', 4)}, 3))::bigint as customer_number,
                timestamptz '{start.isoformat()}'
                    + make_interval(secs => floor({uniform('t', 5)} * 730 * 86400)) as transacted_at,
                1 + floor(3 * power({uniform('n', 6)}, 3))::integer as quantity,
                round((2 + 150 * power({uniform('n', 7)}, 2))::numeric, 2) as unit_price,
                {uniform('n', 8)} < 0.20 as is_discounted,
                {uniform('n', 9)} < 0.05 as is_unknown_product,
                floor(5000 * {uniform('n', 10)})::integer as product_number
            from lines
        ),
        priced as (
            select
                tickets.*,
                (case when is_store then 'P' else 'E' end) || lpad(t::text, 10, '0') as transaction_id,
                case when is_return then -1 else 1 end * quantity * unit_price as gross_amount,
                case when is_discounted then -1 else 0 end * case when is_return then -1 else 1 end
                    * round(quantity * unit_price * 0.10, 2) as discount_negated
            from tickets
        )
        select
            cast(transaction_id || ':' || (line_in_ticket + 1) as varchar) as transaction_line_id,
            cast(transaction_id as varchar) as transaction_id,
            cast(case when is_store then 'store' else 'online' end as varchar) as channel,
            cast(case when is_store then 'S' || lpad((customer_number % 40)::text, 3, '0') end
                 as varchar) as store_id,
            cast('P' || lpad(product_number::text, 5, '0') as varchar) as product_id,
            cast('category_' || (product_number % 12) as varchar) as category,
            cast(case when is_return then -quantity else quantity end as integer) as quantity,
            cast(gross_amount as numeric(14, 2)) as gross_amount,
            cast(-discount_negated as numeric(14, 2)) as discount_amount,
            cast(gross_amount + discount_negated as numeric(14, 2)) as net_amount,
            cast(case when not is_unknown_product then round(gross_amount * 0.55, 2) end
                 as numeric(14, 2)) as cost_amount,
            cast(case when not is_unknown_product
                 then gross_amount + discount_negated - round(gross_amount * 0.55, 2) end
                 as numeric(14, 2)) as margin_amount,
            is_return,
            transacted_at,
            cast(transacted_at at time zone '{timezone}' as date) as transacted_on,
            cast(case when not (is_store and is_anonymous) then {customer_key('customer_number')} end
                 as varchar) as customer_key,
            cast(case when is_store and is_anonymous then null when is_store then 'loyalty'
                 else 'ecom' end as varchar) as customer_source,
            cast(case when is_store and is_anonymous then null
                 else customer_number::text end as varchar) as customer_source_id,
            transacted_at + interval '1 hour' as source_updated_at
        from priced
        """,
        f"""
        create table marts.dim_customers as
        select
            cast({customer_key('n')} as varchar) as customer_key,
            cast('First' || n as varchar) as first_name,
            cast('Last' || n as varchar) as last_name,
            cast(case when {uniform('n', 21)} < 0.80 then 'customer' || n || '@example.com' end
                 as varchar) as email,
            cast(case when {uniform('n', 22)} < 0.60 then '+346' || lpad(n::text, 8, '0') end
                 as varchar) as phone,
            cast(lpad((n % 52000)::text, 5, '0') as varchar) as postal_code,
            cast(case when {uniform('n', 23)} < 0.40 then 'L' || n end as varchar) as loyalty_card_numbers,
            cast('A' || n as varchar) as ecom_account_ids,
            cast(case when {uniform('n', 24)} < 0.60 then 'CRM' || n end as varchar) as crm_contact_ids,
            cast(1 as integer) as source_record_count,
            timestamptz '{start.isoformat()}' + make_interval(days => (n % 700)::integer) as first_seen_at,
            cast(null as timestamp with time zone) as first_purchase_at,
            cast(null as timestamp with time zone) as last_purchase_at,
            true as has_store_purchases,
            false as has_online_purchases,
            cast('store' as varchar) as channels_used,
            {uniform('n', 23)} < 0.40 as is_loyalty_member,
            cast(case when {uniform('n', 23)} < 0.40
                 then (array['bronze', 'silver', 'gold'])[1 + n % 3] end as varchar) as loyalty_tier,
            cast(case when {uniform('n', 23)} < 0.40
                 then date '{start.date().isoformat()}' + (n % 700)::integer end as date)
                as loyalty_enrolled_on,
            {uniform('n', 21)} < 0.80 and {uniform('n', 25)} < 0.55 as has_marketing_consent,
            false as is_unsubscribed,
            cast(null as timestamp with time zone) as unsubscribed_at,
            date '{as_of_at.date().isoformat()}' as as_of_date
        from generate_series(1::bigint, {customers}::bigint) as n
        """,
        f"""
        create table marts.customer_source_keys as
        select
            cast(source as varchar) as source,
            cast(source_prefix || n as varchar) as source_id,
            cast({customer_key('n')} as varchar) as customer_key,
            source = 'crm' as is_key_record,
            timestamptz '{start.isoformat()}' + make_interval(days => (n % 700)::integer) as first_seen_at,
            date '{as_of_at.date().isoformat()}' as as_of_date
        from generate_series(1::bigint, {customers}::bigint) as n
        cross join (values ('crm', 'CRM', 24, 0.60), ('loyalty', 'L', 23, 0.40))
            as sources (source, source_prefix, stream, share)
        where (hashint8extended(n, stream) & 2147483647)::float8 / 2147483648.0 < share
        """,
        # One case for 2 % of the CRM contacts (all of them CRM contacts of customers), some
        # compensated.
        f"""
        create table staging.stg_crm__cases as
        select
            cast('K' || n as varchar) as case_id,
            cast('CRM' || n as varchar) as contact_id,
            timestamptz '{start.isoformat()}' + make_interval(secs => floor({uniform('n', 31)} * 730 * 86400))
                as opened_at,
            cast((array['store', 'phone', 'email', 'chat'])[1 + n % 4] as varchar) as case_channel,
            cast('billing' as varchar) as case_reason,
            cast('resolved' as varchar) as case_status,
            cast(null as timestamp with time zone) as resolved_at,
            cast(case when n % 3 = 0 then 20 end as numeric(14, 2)) as compensation_amount,
            timestamptz '{as_of_at.isoformat()}' as source_updated_at,
            cast('bench' as varchar) as load_batch_id
        from generate_series(1::bigint, {customers}::bigint) as n
        where {uniform('n', 24)} < 0.60 and {uniform('n', 32)} < 0.02
        """,
        # Predictions of the CLV fit for the day (what fit_clv writes before customer_value is
        # built), one per customer with a purchase: pseudo-random values within the table's
        # checks; predicted CLV skewed like spend.
        f"delete from marts.customer_clv where as_of_date = date '{as_of_at.date().isoformat()}'",
        f"""
        insert into marts.customer_clv
        select
            customer_key, date '{as_of_at.date().isoformat()}', frequency, 0, 0, null, 0.45,
            p_alive, 4 * p_alive, 12 * p_alive, 50, round((2000 * power(u, 3))::numeric, 2),
            1 - p_alive,
            case when 1 - p_alive >= 0.8 then 'high' when 1 - p_alive >= 0.5 then 'medium'
                 else 'low' end
        from (
            select customer_key, least(lines / 3, 20)::integer as frequency,
                   case when lines < 3 then 1.0 else {uniform('h', 41)} end as p_alive,
                   {uniform('h', 42)} as u
            from (
                select customer_key, count(*) as lines, hashtext(customer_key)::bigint as h
                from marts.fct_transactions
                where customer_key is not null and not is_return
                    and transacted_at < timestamptz '{as_of_at.isoformat()}'
                group by customer_key
            ) as customers
        ) as predictions
        """,
        # fct_transactions as the nightly runs leave it: its model's indexes (dbt creates them with
        # the table), vacuumed by autovacuum after the bulk of the lines came in, then the last
        # day's transactions written again (the incremental delete and insert of a nightly run:
        # their pages are not all-visible until the next vacuum)
        *(f"create index on marts.fct_transactions ({', '.join(columns)})" for columns in fct_indexes),
        "vacuum (analyze) marts.fct_transactions",
        f"""
        with last_day as (
            delete from marts.fct_transactions
            where transaction_id in (
                select transaction_id from marts.fct_transactions
                where transacted_at >= timestamptz '{day_before.isoformat()}'
                    and transacted_at < timestamptz '{as_of_at.isoformat()}'
            )
            returning *
        )
        insert into marts.fct_transactions select * from last_day
        """,
        "vacuum (analyze) marts.dim_customers",
        "vacuum (analyze) marts.customer_source_keys",
        "vacuum (analyze) staging.stg_crm__cases",
        "vacuum (analyze) marts.customer_clv",
    ]


def bench_database(dsn: str) -> str:
    """The DSN of the benchmark's database on the server of ``dsn`` (created when missing)."""
    parts = address.dsn_parts(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone():
            embedded.create_database(conn, DATABASE)
    return address.build_dsn(address.DsnParts(parts.host, parts.port, parts.user, parts.password,
                                                  DATABASE))


def prepare_inputs(conn: psycopg.Connection, customers: int, lines: int, as_of_at: datetime,
                   timezone: str, fct_indexes: list[list[str]]) -> float | None:
    """Create the inputs unless the same ones are there; seconds taken, None when reused."""
    ddl.bootstrap(conn)
    conn.execute("create table if not exists public.bench_spec (spec text)")
    spec = json.dumps({"customers": customers, "lines": lines, "as_of_at": as_of_at.isoformat(),
                       "timezone": timezone, "generator": GENERATOR_VERSION,
                       "fct_indexes": fct_indexes})
    if conn.execute("select 1 from public.bench_spec where spec = %s", (spec,)).fetchone():
        return None
    started = time.perf_counter()
    conn.execute("delete from public.bench_spec")
    for statement in generation_statements(customers, lines, as_of_at, timezone, fct_indexes):
        conn.execute(statement)
    conn.execute("insert into public.bench_spec values (%s)", (spec,))
    return time.perf_counter() - started


def settle(conn: psycopg.Connection) -> None:
    """Vacuum and analyze the tables the previous round built and checkpoint: what autovacuum
    does in the day between two nightly runs, so that a round does not compete with it."""
    tables = conn.execute("select schemaname, tablename from pg_tables where tablename = any(%s)",
                          (list(SELECTION),)).fetchall()
    for schema, table in tables:
        conn.execute(sql.SQL("vacuum (analyze) {}.{}").format(sql.Identifier(schema),
                                                              sql.Identifier(table)))
    conn.execute("checkpoint")


def floor_select(conn: psycopg.Connection) -> float:
    """Seconds for the bare aggregate, its rows streamed to the client and discarded."""
    started = time.perf_counter()
    with conn.cursor().copy(f"copy ({FLOOR_QUERY}) to stdout") as copy:
        for _ in copy:
            pass
    return time.perf_counter() - started


def floor_table(conn: psycopg.Connection) -> float:
    """Seconds for the bare aggregate materialized by create table as (and committed)."""
    conn.execute("drop table if exists public.bench_floor")
    started = time.perf_counter()
    conn.execute(f"create table public.bench_floor as {FLOOR_QUERY}")
    seconds = time.perf_counter() - started
    conn.execute("drop table public.bench_floor")
    return seconds


def dbt(dsn: str, as_of_at: datetime, timezone: str, work_dir: Path, *args: str,
        unit_tests: bool = False) -> tuple[float, dict]:
    """Wall seconds of ``dbt <args>`` against ``dsn`` as of ``as_of_at``, and the seconds dbt
    reports per node (its own target and log folders under ``work_dir``); without the unit tests,
    as the nightly DAG runs it, unless ``unit_tests``."""
    env = {**os.environ, **QUIET, **({} if unit_tests else NIGHTLY),
           **address.dbt_env(address.dsn_parts(dsn)),
           "TREBOL_AS_OF_AT": as_of_at.isoformat(), "TREBOL_TIMEZONE": timezone}
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), *args, "--project-dir", str(PROJECT_DIR),
         "--profiles-dir", str(PROJECT_DIR), "--target-path", str(work_dir / "target"),
         "--log-path", str(work_dir / "logs")],
        env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"dbt {' '.join(args)} failed:\n{done.stdout[-6000:]}{done.stderr[-2000:]}")
    results = work_dir / "target" / "run_results.json"
    nodes = {}
    if args[0] in ("run", "build") and results.exists():
        nodes = {result["unique_id"]: result["execution_time"]
                 for result in json.loads(results.read_text())["results"]}
    return seconds, nodes


def model_indexes(work_dir: Path, model: str) -> list[list[str]]:
    """The columns of each index a model's `indexes` config asks for, from the parsed manifest."""
    manifest = json.loads((work_dir / "target" / "manifest.json").read_text())
    return [index["columns"] for index in manifest["nodes"][f"model.trebol.{model}"]["config"]
            .get("indexes", [])]


def model_seconds(nodes: dict) -> dict[str, float]:
    return {model: round(nodes.get(f"model.trebol.{model}", 0.0), 1) for model in SELECTION}


def main() -> None:
    """Create the inputs, time the floor and the dbt runs, print the figures."""
    os.environ.setdefault("TREBOL_HOME", str(load_settings({}).home / "bench"))
    settings = load_settings()
    customers = int(os.environ.get("BENCH_CUSTOMERS", "1000000"))
    lines = int(os.environ.get("BENCH_TRANSACTIONS", "10000000"))
    as_of_at = datetime.combine(DAY, datetime.min.time(), ZoneInfo(settings.timezone))
    work_dir = settings.home / "value_marts"
    dsn = bench_database(embedded.resolve_dsn(settings))
    run_dbt = [dsn, as_of_at, settings.timezone, work_dir]
    dbt(*run_dbt, "seed")
    dbt(*run_dbt, "parse")
    with psycopg.connect(dsn, autocommit=True) as conn:
        generated = prepare_inputs(conn, customers, lines, as_of_at, settings.timezone,
                                   model_indexes(work_dir, "fct_transactions"))
        server = {name: conn.execute(f"show {name}").fetchone()[0] for name in SERVER_SETTINGS}
        # every run starts with no segment history
        conn.execute("drop table if exists " + ", ".join(f"marts.{model}" for model in SELECTION)
                     + " cascade")
        conn.execute("checkpoint")
    selection = ["--select", *SELECTION]
    first_run, first_nodes = dbt(dsn, as_of_at - timedelta(days=1), settings.timezone, work_dir,
                                 "run", *selection)
    # Rounds of floor, dbt run, dbt build: on a shared machine the speed drifts within minutes,
    # so each round's ratio compares times taken side by side, and the median round is reported.
    rounds = []
    for _ in range(ROUNDS):
        with psycopg.connect(dsn, autocommit=True) as conn:
            settle(conn)
            floor = floor_table(conn)
            select = floor_select(conn)
        run, run_nodes = dbt(*run_dbt, "run", *selection)
        build, build_nodes = dbt(*run_dbt, "build", *selection)
        rounds.append({"floor": floor, "select": select, "run": run, "build": build,
                       "run_nodes": run_nodes, "build_nodes": build_nodes})
    median = sorted(rounds, key=lambda one: one["build"] / one["floor"])[len(rounds) // 2]
    with_unit_tests, _ = dbt(*run_dbt, "build", *selection, unit_tests=True)
    print(json.dumps({
        "benchmark": "value_marts", "customers": customers, "lines": lines,
        "as_of_date": DAY.isoformat(),
        "inputs_generated_seconds": None if generated is None else round(generated, 1),
        "floor_create_table_seconds": [round(one["floor"], 2) for one in rounds],
        "floor_select_seconds": [round(one["select"], 2) for one in rounds],
        "dbt_run_first_seconds": round(first_run, 1),
        "dbt_run_seconds": [round(one["run"], 1) for one in rounds],
        "dbt_build_seconds": [round(one["build"], 1) for one in rounds],
        "dbt_run_vs_floor": [round(one["run"] / one["floor"], 2) for one in rounds],
        "dbt_build_vs_floor": [round(one["build"] / one["floor"], 2) for one in rounds],
        "dbt_build_vs_floor_median": round(median["build"] / median["floor"], 2),
        "dbt_build_vs_floor_select": [round(one["build"] / one["select"], 2) for one in rounds],
        "dbt_build_vs_floor_select_median": round(statistics.median(
            one["build"] / one["select"] for one in rounds), 2),
        "dbt_build_with_unit_tests_seconds": round(with_unit_tests, 1),
        "dbt_run_models_seconds": model_seconds(median["run_nodes"]),
        "dbt_run_first_models_seconds": model_seconds(first_nodes),
        "dbt_build_tests_seconds": round(sum(
            t for node, t in median["build_nodes"].items() if not node.startswith("model.")), 1),
        "server": server}))


if __name__ == "__main__":
    main()
