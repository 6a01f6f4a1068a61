"""Every table of the warehouse that dbt does not build, and its versioned migrations.

One owner for Trébol's own DDL: the schemas of its own tables and the BI role, the load audit and the
quarantine (``raw``), the raw table of each declared source, the activation tables, the data
quality results and the CLV fit's outputs (``marts.customer_clv``, dbt's source ``clv``, created
empty so that dbt never meets a missing table). ``bootstrap`` applies the migrations a warehouse
has not had yet, in order, each in its own transaction, and records them in
``trebol_meta.schema_migrations``; a warehouse built before the migrations were recorded gets
them all, and each is written to be harmless there (``if not exists``).

Also the one owner of the warehouse's roles and of every grant but those on the relations dbt
builds (dbt's ``grants`` config, dbt_project.yml): migration 10 gives each task role
(``trebol_loader``, ``trebol_transformer``, ``trebol_activation``, ``trebol_checker``, NOLOGIN)
what it may read and write, and a login role (``trebol_<role>_login``) that acts as it; migration
12 gives BI its two roles (``bi_reader`` without the direct identifiers, ``bi_pii_reader`` with
them) and the seeds their schemas (``reference``, ``internal``); migration 13 adds the eraser
(``trebol_eraser``, member of the four, with ``trebol_eraser_login``) for erasure requests, the
suppression list and the requests' audit (``audit.erasure_requests``). The connection this
module is handed (Airflow's ``trebol_warehouse``) is the admin's, for the migrations only.
README, "Least privilege", "BI tools" and "Erasure requests", has the whole matrix.

The raw tables follow the configuration (sources.yml), not the numbered migrations:
``ensure_raw_tables`` creates each declared source's and brings one an earlier release made to
today's shape in place (a snapshot history's ``_unreadable`` and its index on the open records;
for a source with a ``version_column``, the key over the primary key and the version, and
``_available_from``: raw keeps every version of a record), at ``prepare_warehouse`` and before
each load.

Inputs: a psycopg connection (autocommit) and, for the raw tables, the declared sources.
Outputs: tables, roles and grants; nothing else in the package creates one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from trebol.extract.sources import Source
from trebol.settings import load_settings
from trebol.warehouse.address import ERASER_ROLE, TASK_ROLES, group_role, login_role

# the schemas Trébol's own tables live in; the layers dbt builds are made by migration 10 for the
# transformer (DBT_SCHEMAS) or by dbt itself (the dev target's), and dbt keeps them private
OWN_SCHEMAS = ("raw", "marts", "activation")
# the audience models dbt builds (the transformer's, migration 11), which the activation reads
AUDIENCES_SCHEMA = "audiences"
META_SCHEMA = "trebol_meta"
BI_ROLE = "bi_reader"
# BI's readers (migration 12): bi_reader reads the marts without direct identifiers (dbt grants it
# the other columns of a mart that has some: macros/bi_reader_access.sql), bi_pii_reader, a
# member of bi_reader, the marts whole (contact details, for support and the CRM team)
BI_PII_ROLE = "bi_pii_reader"
BI_ROLES = (BI_ROLE, BI_PII_ROLE)
# the seeds' schemas (dbt's, the transformer's, migration 12): reference data BI may join (segment
# maps, value tiers, …) and the pipeline's own lists (placeholders, identifier types, source
# trust), which no BI role may even look into
REFERENCE_SCHEMA = "reference"
INTERNAL_SCHEMA = "internal"
# the seeds dbt built in marts until migration 12 moved them to reference and internal
SEEDS_FORMERLY_IN_MARTS = (
    "audience_offers", "cost_to_serve", "ecom_order_statuses", "identifier_types",
    "lifecycle_stages", "loyalty_tier_privileges", "placeholder_emails", "placeholder_phones",
    "predicted_value_bands", "rfm_segments", "source_trust", "value_tiers")
# marts.data_quality_results' columns but observed_value, which names offending rows (a failed
# email-format check quotes the addresses): what bi_reader may read of it
QUALITY_RESULT_COLUMNS_FOR_BI = ("as_of_date", "run_id", "suite", "expectation", "expectation_id",
                                 "column_name", "severity", "success")
RAW_SCHEMA = "raw"
LOADER, TRANSFORMER, ACTIVATION, CHECKER = (group_role(role) for role in TASK_ROLES)
GROUP_ROLES = (LOADER, TRANSFORMER, ACTIVATION, CHECKER)
# erasure requests (migration 13): a member of the four task roles, to delete a person everywhere
ERASER = group_role(ERASER_ROLE)
# where erasure requests are recorded (migration 13), without the personal data itself
AUDIT_SCHEMA = "audit"
SUPPRESSION_LIST = "raw._suppression_list"
# Trébol's own tables in marts (the migrations', owned by the admin); the rest is dbt's
MARTS_OWN_TABLES = ("data_quality_results", "customer_clv", "clv_model_runs")
# the schemas dbt builds in the nightly target (marts_partitions: segment_history's partitions);
# the transformer owns them but marts, which also holds Trébol's own tables (the owner of a
# schema may drop anything in it), and the dev target's (default prefix, profiles.yml)
DBT_SCHEMAS = ("staging", "intermediate", "marts", "marts_partitions", "quality")
TRANSFORMER_SCHEMAS = (*(schema for schema in DBT_SCHEMAS if schema != "marts"),
                       *(f"dev_{schema}" for schema in DBT_SCHEMAS))
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

# a role created once for the whole server (two databases migrating at once may both try)
_CREATE_ROLE = """
do $$ begin
    create role {role} {kind};
exception when duplicate_object or unique_violation then null;
end $$"""


def _sql_array(names: Iterable[str]) -> str:
    return "array[" + ", ".join(f"'{name}'" for name in names) + "]"


# dbt's schemas and relations made before the roles existed (by the admin) go to the transformer,
# which dbt needs to replace them; marts and Trébol's own tables there stay the migrations'
def _dbt_objects_to_transformer(schemas: tuple[str, ...], relations_also_in: tuple[str, ...] = ()
                                ) -> str:
    """Hand ``schemas`` and the relations in them (and in ``relations_also_in``, but Trébol's
    own marts tables) to the transformer."""
    return f"""
do $$
declare
    item record;
begin
    for item in select nspname from pg_namespace
                where nspname = any({_sql_array(schemas)})
                  and nspowner <> '{TRANSFORMER}'::regrole loop
        execute format('alter schema %I owner to {TRANSFORMER}', item.nspname);
    end loop;
    for item in select c.oid::regclass as relation, c.relkind
                from pg_class as c inner join pg_namespace as n on n.oid = c.relnamespace
                where n.nspname = any({_sql_array((*relations_also_in, *schemas))})
                  and c.relkind in ('r', 'p', 'v', 'm')
                  and c.relowner <> '{TRANSFORMER}'::regrole
                  and not (n.nspname = 'marts' and c.relname = any({_sql_array(MARTS_OWN_TABLES)}))
    loop
        execute format('alter %s %s owner to {TRANSFORMER}',
                       case item.relkind when 'v' then 'view'
                                         when 'm' then 'materialized view' else 'table' end,
                       item.relation);
    end loop;
end $$"""


_DBT_OBJECTS_TO_TRANSFORMER = _dbt_objects_to_transformer(TRANSFORMER_SCHEMAS, ("marts",))

_GROUPS = ", ".join(GROUP_ROLES)

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
    Migration(10, "least privilege: a role per task (loader, transformer, activation, checker) with "
                  "a login role acting as it; what each may read and write", (
        # NOLOGIN roles hold the privileges; each login role acts as its role from the start of
        # its sessions, so that what it creates belongs to the role, whichever login made it
        *(_CREATE_ROLE.format(role=role, kind="nologin") for role in GROUP_ROLES),
        *(_CREATE_ROLE.format(role=login_role(role), kind="login") for role in TASK_ROLES),
        *(f"grant {group_role(role)} to {login_role(role)}" for role in TASK_ROLES),
        *(f"alter role {login_role(role)} set role = '{group_role(role)}'" for role in TASK_ROLES),
        # an admin that is no superuser (CREATEROLE) joins the roles, to hand them objects
        f"""do $$ begin
            if not (select rolsuper from pg_roles where rolname = current_user) then
                execute format('grant {_GROUPS} to %I', current_user);
            end if;
        end $$""",
        # the database: every role may connect (a server may have revoked it from PUBLIC); the
        # loader and the transformer stage in temporary tables; the transformer creates schemas
        # (dbt's, and the dev target's dev_*)
        f"""do $$ begin
            execute format('grant connect on database %I to {BI_ROLE}, {_GROUPS}', current_database());
            execute format('grant temporary on database %I to {LOADER}, {TRANSFORMER}',
                           current_database());
            execute format('grant create on database %I to {TRANSFORMER}', current_database());
        end $$""",
        # raw: the loader creates the sources' tables (warehouse.ddl.ensure_raw_tables makes
        # them its own) and writes its records; an operator's snapshot confirmation is only read
        # (`trebol snapshot confirm` writes it as the admin: the loader cannot confirm itself)
        f"grant usage, create on schema raw to {LOADER}",
        f"grant usage on schema raw to {TRANSFORMER}, {CHECKER}",
        f"grant select, insert, update, delete on raw._load_audit, raw._quarantine, "
        f"raw._missing_files to {LOADER}",
        f"grant select on all tables in schema raw to {LOADER}, {TRANSFORMER}, {CHECKER}",
        f"alter default privileges for role {LOADER} in schema raw "
        f"grant select on tables to {TRANSFORMER}, {CHECKER}",
        f"alter default privileges in schema raw grant select on tables "
        f"to {LOADER}, {TRANSFORMER}, {CHECKER}",
        # activation: staged members and the push log are the activation role's; dbt reads the
        # staged members (a source of the quality models)
        f"grant usage on schema activation to {ACTIVATION}, {TRANSFORMER}, {CHECKER}",
        f"grant select, insert, update, delete on activation.audience_members to {ACTIVATION}",
        f"grant select on activation.audience_members to {TRANSFORMER}",
        f"grant select on activation.audience_members to {CHECKER}",
        # (the push log, until migration 11 replaced it: this migration may run again after it)
        f"""do $$ begin
            if to_regclass('activation.push_log') is not null then
                grant select, insert, update, delete on activation.push_log to {ACTIVATION};
                grant select on activation.push_log to {CHECKER};
            end if;
        end $$""",
        f"alter default privileges in schema activation grant select on tables to {CHECKER}",
        # dbt's schemas are the transformer's, but marts (Trébol's own tables live there too),
        # where it creates, and may pass on its usage (dbt's hooks: macros/bi_reader_access.sql);
        # who reads what dbt builds is dbt's grants config (dbt revokes, on a relation it updates
        # in place, any grant its config does not list)
        *(f"create schema if not exists {schema} authorization {TRANSFORMER}"
          for schema in DBT_SCHEMAS if schema != "marts"),
        f"grant usage, create on schema marts to {TRANSFORMER} with grant option",
        _DBT_OBJECTS_TO_TRANSFORMER,
        *(f"revoke all on schema {schema} from public" for schema in DBT_SCHEMAS),
        f"grant usage on schema staging, intermediate, marts, quality to {CHECKER}",
        f"grant usage on schema marts to {ACTIVATION}",
        # what dbt built before this migration, until its next build applies its grants config
        f"grant select on all tables in schema staging, intermediate, marts, quality to {CHECKER}",
        f"""do $$ begin
            if to_regclass('marts.customer_segments') is not null then
                grant select on marts.customer_segments to {ACTIVATION};
            end if;
        end $$""",
        # Trébol's own marts: the CLV fit (as the transformer) and the checks write theirs
        f"grant select, insert, update, delete on marts.customer_clv, marts.clv_model_runs "
        f"to {TRANSFORMER}",
        f"grant select, insert, update, delete on marts.data_quality_results to {CHECKER}",
        f"alter default privileges in schema marts grant select on tables to {CHECKER}",
    )),
    Migration(11, "activation: audiences schema (dbt's), staged fields and holdouts, sync state, "
                  "sync runs and their records", (
        # the audience models (dbt_project/models/audiences) are the transformer's, read by the
        # activation tasks that stage them and by the checks
        f"create schema if not exists {AUDIENCES_SCHEMA} authorization {TRANSFORMER}",
        # (one a dbt build as the admin made before this migration is handed over, with the dev
        # target's)
        _dbt_objects_to_transformer((AUDIENCES_SCHEMA, f"dev_{AUDIENCES_SCHEMA}")),
        f"revoke all on schema {AUDIENCES_SCHEMA} from public",
        f"grant usage on schema {AUDIENCES_SCHEMA} to {ACTIVATION}, {CHECKER}",
        # what a staged member carries to the destinations (every column of its audience row),
        # and whether the member is in the audience's control group (never sent)
        "alter table activation.audience_members "
        "add column if not exists fields jsonb not null default '{}'::jsonb, "
        "add column if not exists is_holdout boolean not null default false",
        "alter table activation.audience_members alter column fields drop default",
        # what staging made of each audience for a date: a sync sends only an audience staged
        # for its date (never diffs against a missing one, which would remove everyone)
        """create table if not exists activation.staged_audiences (
            as_of_date date not null,
            audience text not null,
            status text not null check (status in ('staged', 'refused')),
            members integer not null,
            held_out integer not null,
            holdout_share numeric(5, 4) not null,
            error text,
            primary key (as_of_date, audience)
        )""",
        # the control group of each audience: assigned on the first date a customer was staged
        # with the share they were drawn at (a changed share draws again)
        """create table if not exists activation.holdouts (
            audience text not null,
            customer_key text not null,
            holdout_share numeric(5, 4) not null,
            assigned_on date not null,
            primary key (audience, customer_key, holdout_share)
        )""",
        """create table if not exists activation.sync_runs (
            sync_run_id bigint generated always as identity primary key,
            sync_name text not null,
            audience text not null,
            destination text not null,
            as_of_date date not null,
            run_id text not null,
            full_resync boolean not null default false,
            status text not null check (status in ('running', 'succeeded', 'partial', 'failed',
                                                   'abandoned', 'skipped')),
            started_at timestamptz not null default now(),
            finished_at timestamptz,
            members integer not null default 0,
            held_out integer not null default 0,
            added integer not null default 0,
            changed integer not null default 0,
            removed integer not null default 0,
            failed integer not null default 0,
            delivery text,
            error text
        )""",
        "create index if not exists sync_runs_by_sync on activation.sync_runs (sync_name, as_of_date)",
        # every change a sync run planned, by batch, and what became of it
        """create table if not exists activation.sync_records (
            sync_run_id bigint not null references activation.sync_runs on delete cascade,
            sync_name text not null,
            customer_key text not null,
            operation text not null check (operation in ('add', 'update', 'remove')),
            reason text,
            batch_no integer not null,
            status text not null check (status in ('pending', 'ok', 'failed')),
            error text,
            fields jsonb not null,
            previous jsonb,
            primary key (sync_run_id, customer_key)
        )""",
        "create index if not exists sync_records_by_batch "
        "on activation.sync_records (sync_run_id, batch_no)",
        "create index if not exists sync_records_by_customer "
        "on activation.sync_records (customer_key, sync_name)",
        # the last state each sync delivered, per customer: what the next run diffs against
        """create table if not exists activation.sync_state (
            sync_name text not null,
            customer_key text not null,
            fields jsonb not null,
            sync_run_id bigint not null,
            synced_at timestamptz not null default now(),
            primary key (sync_name, customer_key)
        )""",
        f"grant select, insert, update, delete on activation.staged_audiences, activation.holdouts, "
        f"activation.sync_runs, activation.sync_records, activation.sync_state to {ACTIVATION}",
        f"grant select on activation.staged_audiences, activation.holdouts, activation.sync_runs, "
        f"activation.sync_records, activation.sync_state to {CHECKER}",
        f"grant select on activation.holdouts to {TRANSFORMER}",
        # the push log of the single file audience gives way to the sync runs and records
        "drop table if exists activation.push_log",
    )),
    Migration(12, "BI: seeds in schemas reference (BI may join them) and internal (out of BI's "
                  "sight); bi_pii_reader for contact details, bi_reader without direct "
                  "identifiers", (
        *(f"create schema if not exists {schema} authorization {TRANSFORMER}"
          for schema in (REFERENCE_SCHEMA, INTERNAL_SCHEMA)),
        # (one a dbt build as the admin made before this migration is handed over, with the dev
        # target's)
        _dbt_objects_to_transformer((REFERENCE_SCHEMA, INTERNAL_SCHEMA, f"dev_{REFERENCE_SCHEMA}",
                                     f"dev_{INTERNAL_SCHEMA}")),
        f"revoke all on schema {REFERENCE_SCHEMA}, {INTERNAL_SCHEMA} from public",
        f"grant usage on schema {REFERENCE_SCHEMA} to {BI_ROLE}, {CHECKER}",
        f"grant usage on schema {INTERNAL_SCHEMA} to {CHECKER}",
        # contact details: a member of bi_reader that also reads the columns bi_reader may not
        _CREATE_ROLE.format(role=BI_PII_ROLE, kind="nologin"),
        f"grant {BI_ROLE} to {BI_PII_ROLE}",
        # the seeds the nightly build made in marts before: the next build makes them in their
        # schemas (cascade: staging's views that read a placeholder list, rebuilt by that build)
        "drop table if exists " + ", ".join(f"marts.{seed}" for seed in SEEDS_FORMERLY_IN_MARTS)
        + " cascade",
        # the checks' verdicts name offending rows (observed_value): bi_reader reads the rest
        f"revoke select on marts.data_quality_results from {BI_ROLE}",
        f"grant select ({', '.join(QUALITY_RESULT_COLUMNS_FOR_BI)}) on marts.data_quality_results "
        f"to {BI_ROLE}",
        f"grant select on marts.data_quality_results to {BI_PII_ROLE}",
    )),
    Migration(13, "erasure requests: the eraser role, the suppression list the loader applies "
                  "(rows_suppressed in the load audit), the audit of the requests", (
        # the eraser deletes a person in every layer: it may do what the four task roles may
        # (their tables, through membership: also those dbt or the loader create later), and
        # write the suppression list and the requests' audit; no migration, role or grant
        _CREATE_ROLE.format(role=ERASER, kind="nologin"),
        _CREATE_ROLE.format(role=login_role(ERASER_ROLE), kind="login"),
        f"grant {ERASER} to {login_role(ERASER_ROLE)}",
        f"alter role {login_role(ERASER_ROLE)} set role = '{ERASER}'",
        f"grant {_GROUPS} to {ERASER}",
        f"""do $$ begin
            if not (select rolsuper from pg_roles where rolname = current_user) then
                execute format('grant {ERASER} to %I', current_user);
            end if;
            execute format('grant connect on database %I to {ERASER}', current_database());
        end $$""",
        # every batch: rows read = loaded + quarantined + suppressed (an erased person's rows)
        "alter table raw._load_audit add column if not exists rows_suppressed integer not null "
        "default 0",
        """do $$
        declare
            item record;
        begin
            for item in select conname from pg_constraint
                        where conrelid = 'raw._load_audit'::regclass and contype = 'c'
                          and pg_get_constraintdef(oid) like '%rows_read%' loop
                execute format('alter table raw._load_audit drop constraint %I', item.conname);
            end loop;
        end $$""",
        "alter table raw._load_audit add constraint _load_audit_rows_balance "
        "check (rows_read = rows_loaded + rows_quarantined + rows_suppressed)",
        # the salted hashes of erased people's identifiers (trebol.erasure.identifiers): the
        # loader reads it, the eraser adds to it; never a plain identifier
        f"""create table if not exists {SUPPRESSION_LIST} (
            identifier_hash text primary key,
            identifier_kind text not null,
            salt_fingerprint text not null,
            request_id uuid not null,
            added_at timestamptz not null default now()
        )""",
        f"grant select on {SUPPRESSION_LIST} to {LOADER}, {CHECKER}",
        f"grant select, insert on {SUPPRESSION_LIST} to {ERASER}",
        # each request: who asked, when, the identifier's type (not its value), what was found
        # and removed where; the checker reads it, nobody else
        f"create schema if not exists {AUDIT_SCHEMA}",
        f"revoke all on schema {AUDIT_SCHEMA} from public",
        f"grant usage on schema {AUDIT_SCHEMA} to {ERASER}, {CHECKER}",
        f"""create table if not exists {AUDIT_SCHEMA}.erasure_requests (
            request_id uuid primary key,
            run_id text not null,
            requested_at timestamptz not null default now(),
            requested_by text not null,
            identifier_type text not null,
            status text not null check (status in ('running', 'completed', 'failed', 'refused')),
            customers integer not null default 0,
            source_records integer not null default 0,
            identifiers_suppressed integer not null default 0,
            shared_identifiers_kept integer not null default 0,
            suppressed_at timestamptz,
            destinations jsonb not null default '{{}}'::jsonb,
            destinations_at timestamptz,
            tables jsonb not null default '{{}}'::jsonb,
            purged_at timestamptz,
            finished_at timestamptz,
            error text
        )""",
        f"grant select, insert, update on {AUDIT_SCHEMA}.erasure_requests to {ERASER}",
        f"grant select on {AUDIT_SCHEMA}.erasure_requests to {CHECKER}",
    )),
    Migration(14, "campaigns: the transformer reads the sync runs and records (which campaigns "
                  "went out, to whom)", (
        f"grant select on activation.sync_runs, activation.sync_records to {TRANSFORMER}",
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
# a source that keeps versions (Source.keeps_versions): when a run begins to load a version, the
# start of the day its file is dated or its database row's cursor value (trebol.extract.apply)
AVAILABLE_FROM = "_available_from"


def open_records_index(source: Source) -> str:
    """The name of a snapshot history's index on its open records (``_valid_to is null``) by
    primary key: what diffing a snapshot reads, whatever the history's length."""
    return f"{source.target}_open_records"


def batch_index(source: Source) -> str:
    """The name of a raw table's index on ``_batch_id``: what reads the rows of a run's batches
    (the quality views' joins with the load audit, the line views' data tests) goes through it,
    whatever the history's length."""
    return f"{source.target}_by_batch"


def raw_key_constraint(source: Source) -> str:
    """The name of the raw table's key constraint: the primary key, or, for a source that keeps
    versions, a unique key over the primary key and the version (``nulls not distinct``: a
    version column may be empty, and an empty version is one version)."""
    return f"{source.target}_{'versions_key' if source.keeps_versions else 'pkey'}"


def raw_key_definition(source: Source) -> sql.Composed:
    """The raw table's key constraint, as ``create table`` and ``alter table add`` take it."""
    kind = sql.SQL("unique nulls not distinct" if source.keeps_versions else "primary key")
    return sql.SQL("constraint {} {} ({})").format(sql.Identifier(raw_key_constraint(source)), kind,
                                                   identifiers(source.raw_key))


def ensure_raw_tables(conn: psycopg.Connection, sources: Iterable[Source],
                      timezone: str | None = None) -> None:
    """Create the raw table of each declared source when missing: its stored columns, the batch
    it came in (with an index: ``batch_index``), the validity range of a snapshot (and whether a
    version stands for an unreadable row; an index on its open records) or when a version
    becomes available (a source that keeps versions), its key; idempotent. Each table belongs
    to the loader role (a first load truncates a table and rebuilds its key, which only the
    owner may): one the admin made, now or before migration 10, is handed to it. A table an
    earlier release made is brought to this shape in place (``_keep_versions``; ``timezone``:
    the business timezone it dates files in, default the settings')."""
    with conn.transaction():
        for source in sources:
            columns = [sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(PG_TYPES[c.type]))
                       for c in source.columns if c.stored]
            columns.append(sql.SQL("_batch_id text not null"))
            if source.kind == "snapshot":
                columns += [sql.SQL("_valid_from date not null"), sql.SQL("_valid_to date"),
                            sql.SQL(UNREADABLE_COLUMN)]
            if source.keeps_versions:
                columns.append(sql.SQL("{} timestamptz not null").format(
                    sql.Identifier(AVAILABLE_FROM)))
            conn.execute(sql.SQL("create table if not exists {} ({}, {})").format(
                raw_table(source), sql.SQL(", ").join(columns), raw_key_definition(source)))
            owner = conn.execute("select tableowner from pg_tables where schemaname = %s "
                                 "and tablename = %s", (RAW_SCHEMA, source.target)).fetchone()[0]
            if owner != LOADER:
                conn.execute(sql.SQL("alter table {} owner to {}").format(
                    raw_table(source), sql.Identifier(LOADER)))
            conn.execute(sql.SQL("create index if not exists {} on {} (_batch_id)").format(
                sql.Identifier(batch_index(source)), raw_table(source)))
            if source.kind == "snapshot":  # a history created before the column (the index) existed
                conn.execute(sql.SQL("alter table {} add column if not exists {}").format(
                    raw_table(source), sql.SQL(UNREADABLE_COLUMN)))
                conn.execute(sql.SQL("create index if not exists {} on {} ({}) where _valid_to is null"
                                     ).format(sql.Identifier(open_records_index(source)),
                                              raw_table(source), identifiers(source.primary_key)))
            if source.keeps_versions:
                _keep_versions(conn, source, timezone)


def _keep_versions(conn: psycopg.Connection, source: Source, timezone: str | None) -> None:
    """Bring the raw table of a source that keeps versions, made by a release that kept each
    record's newest version only (keyed by the primary key alone), to one row per key and
    version, its rows kept: each is dated ``_available_from`` as the loader dates a version
    (a file's row, the start of the day of its batch's file in ``raw._load_audit``; a database
    row, its cursor). Nothing when the table has its key already."""
    has_key = conn.execute(
        "select exists (select from pg_constraint where conrelid = %s::regclass and conname = %s)",
        (f"{RAW_SCHEMA}.{source.target}", raw_key_constraint(source))).fetchone()[0]
    if has_key:
        return
    if source.kind == "postgres":
        dated = sql.SQL("cast({} as timestamptz)").format(sql.Identifier(source.cursor or ""))
    else:
        timezone = timezone or load_settings().timezone
        dated = sql.SQL(
            "(select cast(audit.file_day as timestamp) at time zone {tz} from raw._load_audit "
            "as audit where audit.source = {name} and audit.batch_id = t._batch_id)").format(
            tz=sql.Literal(timezone), name=sql.Literal(source.name))
    table, available = raw_table(source), sql.Identifier(AVAILABLE_FROM)
    conn.execute(sql.SQL("alter table {} add column if not exists {} timestamptz").format(
        table, available))
    # a row whose batch is not audited (never, unless someone deleted its audit) stays visible
    # to every run, as it was
    conn.execute(sql.SQL("update {} as t set {} = coalesce({}, '-infinity')").format(
        table, available, dated))
    conn.execute(sql.SQL("alter table {} alter column {} set not null").format(table, available))
    conn.execute(sql.SQL("alter table {} drop constraint if exists {}").format(
        table, sql.Identifier(f"{source.target}_pkey")))
    conn.execute(sql.SQL("alter table {} add {}").format(table, raw_key_definition(source)))
