"""Every table of the warehouse that dbt does not build, and its versioned migrations.

One owner for Trébol's own DDL: the schemas of its own tables and the BI role, the load audit and the
quarantine (``raw``), the raw table of each declared source, the activation tables, the data
quality results and the CLV fit's outputs (``marts.customer_clv``, dbt's source ``clv``, created
empty so that dbt never meets a missing table). ``bootstrap`` applies the migrations a warehouse
has not had yet, in order, each in its own transaction, and records them in
``trebol_meta.schema_migrations``; a warehouse built before the migrations were recorded gets
them all, and each is written to be harmless there (``if not exists``).

Inputs: a psycopg connection (autocommit) and, for the raw tables, the declared sources.
Outputs: tables; nothing else in the package creates one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from trebol.extract.sources import Source

# the schemas Trébol's own tables live in; dbt creates (and keeps private) the layers it builds
OWN_SCHEMAS = ("raw", "marts", "activation")
META_SCHEMA = "trebol_meta"
BI_ROLE = "bi_reader"
RAW_SCHEMA = "raw"
# a declared column type and the PostgreSQL type its raw column has
PG_TYPES = {"text": "text", "integer": "bigint", "numeric": "numeric", "boolean": "boolean",
            "date": "date", "timestamptz": "timestamptz", "json": "jsonb"}


@dataclass(frozen=True)
class Migration:
    """One step of the schema's history: its version, what it does, its SQL."""

    version: int
    description: str
    statements: tuple[str, ...]


_GRANT_IF_ROLE = """
do $$ begin
    if exists (select from pg_roles where rolname = '{role}') then
        grant select on {tables} to {role};
    end if;
end $$"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "schemas of Trébol's own tables, the BI role, none of them open to PUBLIC", (
        *(f"create schema if not exists {schema}" for schema in OWN_SCHEMAS),
        f"""do $$ begin
            if not exists (select from pg_roles where rolname = '{BI_ROLE}') then
                create role {BI_ROLE} nologin;
            end if;
        end $$""",
        *(f"revoke all on schema {schema} from public" for schema in OWN_SCHEMAS),
    )),
    Migration(2, "load audit and quarantine", (
        """create table if not exists raw._load_audit (
            source text not null,
            batch_id text not null,
            interval_start timestamptz not null,
            interval_end timestamptz not null,
            rows_read integer not null,
            rows_loaded integer not null,
            rows_quarantined integer not null,
            primary key (source, batch_id),
            check (rows_read = rows_loaded + rows_quarantined)
        )""",
        # columns added after the first release: present on a new table, added on an old one
        "alter table raw._load_audit add column if not exists location text",
        "alter table raw._load_audit add column if not exists file_day date",
        "alter table raw._load_audit add column if not exists checksum text",
        "alter table raw._load_audit add column if not exists notes text",
        "alter table raw._load_audit add column if not exists started_at timestamptz",
        "alter table raw._load_audit add column if not exists finished_at timestamptz",
        """create table if not exists raw._quarantine (
            source text not null,
            batch_id text not null,
            line_number integer not null,
            reason text not null,
            payload text not null,
            primary key (source, batch_id, line_number)
        )""",
    )),
    Migration(3, "activation: staged audience members and the push log", (
        """create table if not exists activation.push_log (
            audience text not null,
            destination text not null,
            as_of_date date not null,
            rows_pushed integer not null,
            target text not null,
            content_sha256 text not null,
            pushed_at timestamptz not null default now(),
            primary key (audience, destination, as_of_date)
        )""",
        """create table if not exists activation.audience_members (
            as_of_date date not null,
            audience text not null,
            customer_key text not null,
            email text not null,
            primary key (as_of_date, audience, customer_key)
        )""",
    )),
    Migration(4, "data quality results", (
        """create table if not exists marts.data_quality_results (
            as_of_date date not null,
            run_id text not null,
            suite text not null,
            expectation text not null,
            expectation_id text not null,
            column_name text,
            severity text not null check (severity in ('error', 'warning')),
            success boolean not null,
            observed_value text not null,
            primary key (run_id, suite, expectation_id)
        )""",
        _GRANT_IF_ROLE.format(role=BI_ROLE, tables="marts.data_quality_results"),
    )),
    Migration(5, "CLV fit outputs (dbt source clv)", (
        """create table if not exists marts.customer_clv (
            customer_key text not null,
            as_of_date date not null,
            frequency integer not null,
            recency_days integer not null,
            age_days integer not null,
            mean_repeat_spend numeric(14, 2),
            margin_rate numeric(8, 4) not null,
            p_alive double precision not null check (p_alive between 0 and 1),
            expected_purchases_90d double precision not null check (expected_purchases_90d >= 0),
            expected_purchases_365d double precision not null check (expected_purchases_365d >= 0),
            expected_avg_spend numeric(14, 2) not null,
            predicted_clv numeric(14, 2) not null,
            churn_risk double precision not null check (churn_risk between 0 and 1),
            churn_risk_band text not null check (churn_risk_band in ('low', 'medium', 'high')),
            primary key (as_of_date, customer_key)
        )""",
        """create table if not exists marts.clv_model_runs (
            as_of_date date primary key,
            customers integer not null,
            repeat_customers integer not null,
            gamma_gamma_customers integer not null,
            excluded_non_positive_spend integer not null,
            bgnbd_r double precision not null,
            bgnbd_alpha double precision not null,
            bgnbd_a double precision not null,
            bgnbd_b double precision not null,
            bgnbd_log_likelihood double precision not null,
            gamma_gamma_p double precision not null,
            gamma_gamma_q double precision not null,
            gamma_gamma_v double precision not null,
            gamma_gamma_log_likelihood double precision not null,
            time_unit text not null,
            horizon_months integer not null,
            annual_discount_rate double precision not null,
            bgnbd_fit_seconds double precision not null,
            gamma_gamma_fit_seconds double precision not null,
            parameters jsonb not null
        )""",
        _GRANT_IF_ROLE.format(role=BI_ROLE, tables="marts.customer_clv, marts.clv_model_runs"),
    )),
    Migration(6, "raw._is_valid: whether text casts to a type, for servers without pg_input_is_valid", (
        """create or replace function raw._is_valid(value text, type_name text) returns boolean
        language plpgsql immutable as $$
        begin
            execute format('select cast(%L as %s)', value, type_name);
            return true;
        exception when others then
            return false;
        end $$""",
    )),
    Migration(7, "quarantine: the key of a rejected record, when it could be read", (
        # e.g. {"contact_id": "C123"}: whose row was quarantined (consent kept fail-safe, erasure)
        "alter table raw._quarantine add column if not exists record_key jsonb",
    )),
    Migration(8, "snapshots held by the loader's guard, and the operator's confirmations", (
        # why a batch was held (nothing of it applied, every row quarantined); null: applied
        "alter table raw._load_audit add column if not exists held_reason text",
        """create table if not exists raw._snapshot_confirmations (
            source text not null,
            batch_id text not null,
            checksum text not null,
            confirmed_at timestamptz not null default now(),
            confirmed_by text not null,
            primary key (source, batch_id, checksum)
        )""",
    )),
    Migration(9, "the run behind each push; expected export files that did not arrive", (
        # the Airflow run that pushed (a summary reports only its own run's pushes)
        "alter table activation.push_log add column if not exists run_id text",
        """create table if not exists raw._missing_files (
            source text not null,
            file_day date not null,
            interval_start timestamptz not null,
            interval_end timestamptz not null,
            severity text not null check (severity in ('error', 'warning')),
            expected text not null,
            primary key (source, file_day)
        )""",
    )),
)


def _applied(conn: psycopg.Connection) -> set[int]:
    conn.execute(f"create schema if not exists {META_SCHEMA}")
    conn.execute(f"""create table if not exists {META_SCHEMA}.schema_migrations (
        version integer primary key,
        description text not null,
        applied_at timestamptz not null default now()
    )""")
    return {row[0] for row in conn.execute(f"select version from {META_SCHEMA}.schema_migrations")}


def bootstrap(conn: psycopg.Connection) -> list[int]:
    """Apply the migrations this warehouse lacks, in order; the versions applied (idempotent).
    Concurrent callers are serialised by an advisory lock, so each migration runs once."""
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('trebol_meta.schema_migrations'))")
        done = _applied(conn)
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            with conn.transaction():
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(f"insert into {META_SCHEMA}.schema_migrations (version, description) "
                             "values (%s, %s)", (migration.version, migration.description))
            applied_now.append(migration.version)
    return applied_now


def identifiers(names: Iterable[str]) -> sql.Composed:
    """Quoted identifiers, comma-separated (a column list)."""
    return sql.SQL(", ").join(map(sql.Identifier, names))


def raw_table(source: Source) -> sql.Composed:
    """The raw table a source lands in."""
    return sql.SQL("{}.{}").format(sql.Identifier(RAW_SCHEMA), sql.Identifier(source.target))


# a snapshot version that carries the last readable state of a record whose row in that day's
# snapshot was quarantined (its key could be read): see trebol.extract.apply
UNREADABLE_COLUMN = "_unreadable boolean not null default false"


def ensure_raw_tables(conn: psycopg.Connection, sources: Iterable[Source]) -> None:
    """Create the raw table of each declared source when missing: its stored columns, the batch
    it came in, the validity range of a snapshot (and whether a version stands for an unreadable
    row), the declared primary key; idempotent."""
    with conn.transaction():
        for source in sources:
            columns = [sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(PG_TYPES[c.type]))
                       for c in source.columns if c.stored]
            columns.append(sql.SQL("_batch_id text not null"))
            key = list(source.primary_key)
            if source.kind == "snapshot":
                columns += [sql.SQL("_valid_from date not null"), sql.SQL("_valid_to date"),
                            sql.SQL(UNREADABLE_COLUMN)]
                key.append("_valid_from")
            conn.execute(sql.SQL("create table if not exists {} ({}, primary key ({}))").format(
                raw_table(source), sql.SQL(", ").join(columns), identifiers(key)))
            if source.kind == "snapshot":  # a history created before the column existed
                conn.execute(sql.SQL("alter table {} add column if not exists {}").format(
                    raw_table(source), sql.SQL(UNREADABLE_COLUMN)))
