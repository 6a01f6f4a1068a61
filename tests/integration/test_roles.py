"""Least privilege: what each task role can and cannot do, on a real PostgreSQL.

A database of its own, kept from PUBLIC as docker-compose's is (so only the roles' own grants let
them in), migrated by the admin; the sources are loaded by the loader's login role and the whole
dbt project built by the transformer's, as the nightly DAG does. Each "cannot" is PostgreSQL's
refusal (``InsufficientPrivilege``), never an error of a missing table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from trebol import summary
from trebol.activation import staging, sync
from trebol.activation.config import parse
from trebol.activation.destinations import file as file_destination
from trebol.activation.destinations.base import Connection
from trebol.airflow import connections
from trebol.demo import SimulationResult
from trebol.extract import load
from trebol.extract.sources import load_sources
from trebol.quality import gate
from trebol.quality.rules import load_rules
from trebol.settings import load_settings
from trebol.warehouse import address, ddl

from ..helpers import (
    DEMO_DATE,
    SessionWarehouse,
    drop_database,
    fresh_database,
    load_sources_until,
    local_midnight,
    run_dbt,
)

pytestmark = [pytest.mark.integration, pytest.mark.server]
# models, seeds and snapshots: the data tests are other tests' business
NO_TESTS = ("--exclude-resource-type", "test", "--exclude-resource-type", "unit_test")


@dataclass(frozen=True)
class RolesWarehouse:
    """The roles' database: its admin DSN, each task role's login DSN, dbt's work folder."""

    admin: str
    logins: dict[str, str]
    work_dir: Path

    def connect(self, role: str | None = None) -> psycopg.Connection:
        """An autocommit connection as a task role's login (None: the admin)."""
        return psycopg.connect(self.logins[role] if role else self.admin, autocommit=True)


def login_dsn(admin_dsn: str, role: str) -> str:
    """The login role of a task role on the admin's database (no password: the embedded
    warehouse trusts its private socket)."""
    parts = address.dsn_parts(admin_dsn)
    return address.build_dsn(address.DsnParts(parts.host, parts.port, address.login_role(role), "",
                                              parts.dbname))


def keep_from_public(admin_dsn: str) -> None:
    """Revoke PUBLIC's connect and temporary on the database, as deploy/postgres-init does."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("revoke all on database {} from public").format(
            sql.Identifier(address.dsn_parts(admin_dsn).dbname)))


def refused(conn: psycopg.Connection, statement: str) -> None:
    """``statement`` fails for want of a privilege."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def same_rows(table: str) -> str:
    """An insert that writes nothing but needs the insert (and select) privilege."""
    return f"insert into {table} select * from {table} where false"


@pytest.fixture(scope="module")
def warehouse(test_warehouse: SessionWarehouse, demo_sources: SimulationResult,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolesWarehouse]:
    work = tmp_path_factory.mktemp("roles")
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_roles")
    try:
        keep_from_public(dsn)
        with psycopg.connect(dsn, autocommit=True) as admin:  # the DAG's prepare_warehouse
            ddl.bootstrap(admin)
            ddl.ensure_raw_tables(admin, load_sources().values())
        roles = RolesWarehouse(dsn, {role: login_dsn(dsn, role) for role in address.TASK_ROLES},
                               work)
        with roles.connect("loader") as loader:  # extract_load
            load_sources_until(loader, test_warehouse.pos_dsn, test_warehouse.settings.sources_dir,
                               DEMO_DATE)
        run_dbt(roles.logins["transformer"], local_midnight(DEMO_DATE), "build", *NO_TESTS,
                work_dir=work)  # dbt_build and dbt_build_value
        yield roles
    finally:
        drop_database(test_warehouse.dsn, dsn)


def test_each_task_connects_as_its_role(warehouse: RolesWarehouse,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Airflow connections `trebol run` defines reach the warehouse as each task's role."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{address.AIRFLOW_CONN_ID.upper()}",
                       address.airflow_connection_json(warehouse.admin))
    for role, dsn in warehouse.logins.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{address.role_conn_id(role).upper()}",
                           address.airflow_connection_json(dsn))
    admin = address.dsn_parts(warehouse.admin).user
    for task, role in connections.ROLE_OF_TASK.items():
        with connections.task_connection(task) as conn:
            users = conn.execute("select current_user, session_user").fetchone()
        expected = (admin, admin) if role is None else (address.group_role(role),
                                                        address.login_role(role))
        assert users == expected, task
    # dbt's profile gets the transformer's login from its task's connection
    for task in ("dbt_build", "dbt_build_value"):
        dbt_user = address.dbt_env(connections.warehouse_parts(connections.task_conn_id(task)))
        assert dbt_user["TREBOL_DBT_USER"] == address.login_role("transformer"), task


def test_the_loader_writes_raw_and_nothing_else(warehouse: RolesWarehouse,
                                               test_warehouse: SessionWarehouse) -> None:
    with warehouse.connect("loader") as loader:
        assert loader.execute("select count(*) from raw.crm_contacts").fetchone()[0] > 0
        # every source that has something to load (a source of cadence none may have no file)
        delivered = [source for source in load_sources().values() if source.kind == "postgres"
                     or load.source_files(source, test_warehouse.settings.sources_dir)]
        assert loader.execute("select count(distinct source) from raw._load_audit").fetchone()[0] == len(
            delivered) >= 10
        with loader.transaction(force_rollback=True):
            for table in ("raw.crm_contacts", "raw._load_audit", "raw._quarantine",
                          "raw._missing_files"):
                loader.execute(same_rows(table))
                loader.execute(f"delete from {table} where false")
        # a source declared later: the loader creates its table, which the transformer and the
        # checker may read (default privileges)
        loader.execute("create table raw.new_source (id text primary key)")
        try:
            for role in ("transformer", "checker"):
                with warehouse.connect(role) as reader:
                    assert reader.execute("select count(*) from raw.new_source").fetchone() == (0,)
            with warehouse.connect("activation") as activation:
                refused(activation, "select count(*) from raw.new_source")
        finally:
            loader.execute("drop table raw.new_source")
        # an operator's confirmation of a held snapshot is not the loader's to give
        refused(loader, same_rows("raw._snapshot_confirmations"))
        refused(loader, "select count(*) from marts.dim_customers")
        refused(loader, "create table marts.loader_was_here (id int)")
        refused(loader, same_rows("marts.customer_segments"))
        refused(loader, same_rows("activation.sync_state"))
        refused(loader, "select count(*) from staging.stg_crm__contacts")


def test_the_transformer_builds_from_raw_and_writes_only_its_layers(
        warehouse: RolesWarehouse) -> None:
    run_dbt(warehouse.logins["transformer"], local_midnight(DEMO_DATE), "run", "--select",
            "stg_crm__contacts", work_dir=warehouse.work_dir)
    with warehouse.connect() as admin:
        owners = dict(admin.execute("""
            select n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner)
            from pg_class as c inner join pg_namespace as n on n.oid = c.relnamespace
            where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v')""",
                                    (list(ddl.DBT_SCHEMAS),)).fetchall())
    dbt_relations = {name for name in owners
                     if name.removeprefix("marts.") not in ddl.MARTS_OWN_TABLES}
    assert {"staging.stg_crm__contacts", "marts.customer_segments",
            "quality.raw_source_days"} <= dbt_relations
    assert {owners[name] for name in dbt_relations} == {ddl.TRANSFORMER}
    with warehouse.connect("transformer") as transformer:
        assert transformer.execute("select count(*) from raw.crm_contacts").fetchone()[0] > 0
        transformer.execute("select count(*) from activation.audience_members")
        with transformer.transaction(force_rollback=True):  # fit_clv's outputs
            for table in ("marts.customer_clv", "marts.clv_model_runs"):
                transformer.execute(same_rows(table))
                transformer.execute(f"delete from {table} where false")
        refused(transformer, same_rows("raw.crm_contacts"))
        refused(transformer, same_rows("raw._load_audit"))
        refused(transformer, "create table raw.transformer_was_here (id int)")
        refused(transformer, same_rows("activation.audience_members"))
        refused(transformer, same_rows("activation.sync_state"))
        refused(transformer, same_rows("marts.data_quality_results"))  # the checks' verdicts
        # the migrations' own tables: written by the CLV fit, never dropped or altered
        refused(transformer, "drop table marts.customer_clv")
        refused(transformer, "alter table marts.data_quality_results add column x int")


def test_activation_stages_and_pushes_and_writes_nothing_else(warehouse: RolesWarehouse,
                                                              tmp_path: Path) -> None:
    config = parse({"destinations": {"drop": {"type": "file"}},
                    "syncs": [{"audience": "aud_winback_high_value", "destination": "drop",
                               "holdout_share": 0.1, "fields": {"email": "email",
                                                                "offer": "offer_code"}}]})
    drop = file_destination.build("drop", Connection("", str(tmp_path)), {})
    with warehouse.connect("activation") as activation:
        [staged] = staging.stage_audiences(activation, config, DEMO_DATE)
        assert staged.status == "staged" and staged.members > 0
        report = sync.run_sync(activation, config, config.syncs[0].name, DEMO_DATE, "roles_test",
                               drop)
        assert report.added == staged.members - staged.held_out > 0
        assert activation.execute("select count(*) from activation.sync_records "
                                  "where status = 'ok'").fetchone() == (report.added,)
        refused(activation, "select count(*) from marts.dim_customers")
        refused(activation, "select count(*) from raw.crm_contacts")
        refused(activation, same_rows("raw._load_audit"))
        refused(activation, same_rows("marts.customer_segments"))
        refused(activation, same_rows("audiences.aud_winback_high_value"))
        refused(activation, "delete from marts.customer_segments where false")
        refused(activation, "create table activation.activation_was_here (id int)")
        refused(activation, "create table marts.activation_was_here (id int)")
        refused(activation, "create table audiences.activation_was_here (id int)")


def test_the_checker_reads_every_layer_and_writes_only_the_verdicts(warehouse: RolesWarehouse,
                                                                    tmp_path: Path) -> None:
    with warehouse.connect() as admin, warehouse.connect("checker") as checker:
        # the run summary, as the checker, sees what the admin sees: every relation of the layers
        as_checker = summary.build_summary(checker, DEMO_DATE, tmp_path, "roles_test")
        assert as_checker["rows_per_layer"] == summary.rows_per_layer(admin)
        assert as_checker["marts_checksum"] == summary.marts_checksum(admin)
        assert as_checker["identity"] == summary.identity(admin)
        # the raw-batch checks, Great Expectations and their record, as the checker (what the
        # demo's batches are worth, an error or not, is tests/integration/test_quality.py's)
        run = gate.QualityRun(dsn=warehouse.logins["checker"], as_of_date=DEMO_DATE,
                              interval_end=local_midnight(DEMO_DATE), run_id="roles_test_checks",
                              timezone="Europe/Madrid", expectations_dir=load_settings().expectations_dir,
                              report_dir=tmp_path / "reports")
        with contextlib.suppress(gate.QualityGateError):
            gate.check_raw_batches(checker, run, list(load_sources().values()), load_rules())
        assert checker.execute("select count(distinct suite) from marts.data_quality_results "
                               "where run_id = 'roles_test_checks'").fetchone()[0] > 1
        with checker.transaction(force_rollback=True):
            checker.execute("""insert into marts.data_quality_results values
                (%s, 'roles_test', 'suite', 'expectation', 'id', null, 'error', true, '1')""",
                            (DEMO_DATE,))
            checker.execute("delete from marts.data_quality_results where run_id = 'roles_test'")
        refused(checker, same_rows("marts.customer_segments"))
        refused(checker, same_rows("marts.customer_clv"))
        refused(checker, same_rows("raw.crm_contacts"))
        refused(checker, same_rows("activation.sync_state"))
        refused(checker, "create table marts.checker_was_here (id int)")
        refused(checker, "create table quality.checker_was_here (id int)")


# The direct identifiers of a person in each mart (names, emails, phones, postal codes, the source
# systems' ids of their records), written out here rather than read from the dbt project: a
# column that loses its tag in the yml fails this test. Every other column of every relation in
# marts and reference is bi_reader's to read.
DIRECT_IDENTIFIERS = {
    "marts.dim_customers": {"first_name", "last_name", "email", "phone", "postal_code",
                            "loyalty_card_numbers", "ecom_account_ids", "crm_contact_ids"},
    "marts.customer_segments": {"email"},
    "marts.customer_source_keys": {"source_id"},
    "marts.customer_keys": {"key_source_id"},
    "marts.fct_transactions": {"customer_source_id"},
    "marts.service_recovery_queue": {"contact_id"},
    "marts.loyalty_members": {"loyalty_card_number"},
    # a check's observed value names offending rows (a failed email-format check, the addresses)
    "marts.data_quality_results": {"observed_value"},
}
# what no BI role may read at all: every other layer, and the pipeline's own seeds
CLOSED_TO_BI = ("raw.crm_contacts", "staging.stg_crm__contacts", "intermediate.int_identity__records",
                "quality.raw_source_days", "activation.audience_members",
                "audiences.aud_winback_high_value", "internal.placeholder_emails",
                "internal.identifier_types", "internal.source_trust")


@pytest.fixture(scope="module")
def bi_logins(warehouse: RolesWarehouse) -> Iterator[dict[str, str]]:
    """A login in each BI role, as `trebol warehouse users add` makes them (without a password:
    the test reaches the server as the tasks do)."""
    logins = {ddl.BI_ROLE: "trebol_test_roles_analyst", ddl.BI_PII_ROLE: "trebol_test_roles_support"}
    parts = address.dsn_parts(warehouse.admin)
    with warehouse.connect() as admin:
        for role, user in logins.items():
            admin.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(user)))
            admin.execute(sql.SQL("create role {} login in role {}").format(
                sql.Identifier(user), sql.Identifier(role)))
    try:
        yield {role: address.build_dsn(address.DsnParts(parts.host, parts.port, user, "",
                                                        parts.dbname))
               for role, user in logins.items()}
    finally:
        with warehouse.connect() as admin:
            for user in logins.values():
                admin.execute(sql.SQL("drop role {}").format(sql.Identifier(user)))


def readable_columns(conn: psycopg.Connection, relation: str, columns: list[str]) -> set[str]:
    """The columns of ``relation`` a select of each, one at a time, reads; a refusal must be
    PostgreSQL's for want of a privilege."""
    readable = set()
    for column in columns:
        try:
            conn.execute(sql.SQL("select {} from {} limit 1").format(
                sql.Identifier(column), sql.Identifier(*relation.split("."))))
        except psycopg.errors.InsufficientPrivilege:
            continue
        readable.add(column)
    return readable


def test_bi_reader_reads_marts_only(warehouse: RolesWarehouse, bi_logins: dict[str, str]) -> None:
    with psycopg.connect(bi_logins[ddl.BI_ROLE], autocommit=True) as analyst:  # connect: the grant
        for mart in ("marts.customer_segments", "marts.customer_rfmt", "marts.customer_clv",
                     "marts.segment_history", "reference.lifecycle_stages",
                     "reference.audience_offers"):
            analyst.execute(f"select count(*) from {mart}")
        assert analyst.execute("select count(*) from marts.dim_customers").fetchone()[0] > 0
        for relation in CLOSED_TO_BI:
            refused(analyst, f"select 1 from {relation} limit 1")
        refused(analyst, same_rows("marts.customer_segments"))
        refused(analyst, same_rows("reference.lifecycle_stages"))
        refused(analyst, "create table reference.analyst_was_here (id int)")


def test_the_bi_roles_read_the_marts_column_by_column(warehouse: RolesWarehouse,
                                                      bi_logins: dict[str, str]) -> None:
    """bi_reader reads every column of marts and reference but the direct identifiers, which
    bi_pii_reader reads too; column by column, as each role's login."""
    with warehouse.connect() as admin:
        columns: dict[str, list[str]] = {}
        for schema, table, column in admin.execute("""
                select table_schema, table_name, column_name from information_schema.columns
                where table_schema in ('marts', 'reference') order by 1, 2, ordinal_position"""):
            columns.setdefault(f"{schema}.{table}", []).append(column)
    assert set(DIRECT_IDENTIFIERS) <= set(columns)
    assert {"marts.customer_value", "reference.value_tiers"} <= set(columns)
    with psycopg.connect(bi_logins[ddl.BI_ROLE], autocommit=True) as analyst, \
            psycopg.connect(bi_logins[ddl.BI_PII_ROLE], autocommit=True) as support:
        for relation, names in columns.items():
            hidden = DIRECT_IDENTIFIERS.get(relation, set())
            assert readable_columns(analyst, relation, names) == set(names) - hidden, relation
            assert readable_columns(support, relation, names) == set(names), relation
        # a BI tool lists the columns it may read; `select *` is the whole table's
        listed = {row[0] for row in analyst.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'dim_customers'")}
        assert listed == set(columns["marts.dim_customers"]) - DIRECT_IDENTIFIERS["marts.dim_customers"]
        refused(analyst, "select * from marts.dim_customers limit 1")
        assert support.execute("select count(email) from marts.dim_customers").fetchone()[0] > 0
        for relation in CLOSED_TO_BI:
            refused(support, f"select 1 from {relation} limit 1")
        refused(support, same_rows("marts.dim_customers"))


def test_a_rebuild_in_place_keeps_the_readers_grants(warehouse: RolesWarehouse) -> None:
    """dbt revokes, on a relation it updates in place (an incremental model, a seed), every grant
    its config does not name: the readers must be in its config."""
    run_dbt(warehouse.logins["transformer"], local_midnight(DEMO_DATE), "build", "--select",
            "fct_transactions lifecycle_stages customer_segments", *NO_TESTS,
            work_dir=warehouse.work_dir)
    with warehouse.connect("checker") as checker:
        for relation in ("marts.fct_transactions", "reference.lifecycle_stages"):
            assert checker.execute(f"select count(*) from {relation}").fetchone()[0] > 0, relation
    with warehouse.connect("activation") as activation:
        assert activation.execute("select count(*) from marts.customer_segments").fetchone()[0] > 0
    # and bi_reader's column grants (fct_transactions is incremental: updated in place)
    with warehouse.connect() as admin:
        for relation in ("marts.fct_transactions", "marts.customer_segments",
                         "reference.lifecycle_stages"):
            granted = admin.execute("""select count(*) from information_schema.column_privileges
                where grantee = %s and table_schema || '.' || table_name = %s""",
                                    (ddl.BI_ROLE, relation)).fetchone()[0]
            hidden = DIRECT_IDENTIFIERS.get(relation, set())
            total = admin.execute("select count(*) from information_schema.columns "
                                  "where table_schema || '.' || table_name = %s",
                                  (relation,)).fetchone()[0]
            assert granted == total - len(hidden), relation


def test_migration_10_runs_again_harmlessly(warehouse: RolesWarehouse) -> None:
    acl_query = """select n.nspname, c.relname, c.relowner::regrole::text, c.relacl::text
        from pg_class as c inner join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname in ('raw', 'activation', 'staging', 'intermediate', 'marts', 'quality')
        order by 1, 2"""
    [migration] = [m for m in ddl.MIGRATIONS if m.version == 10]
    with warehouse.connect() as admin:
        before = admin.execute(acl_query).fetchall()
        with admin.transaction():
            for statement in migration.statements:
                admin.execute(statement)
        assert admin.execute(acl_query).fetchall() == before
        assert ddl.bootstrap(admin) == []


def test_an_existing_warehouse_is_handed_to_the_roles(
        test_warehouse: SessionWarehouse, demo_sources: SimulationResult, tmp_path: Path) -> None:
    """A warehouse loaded and built by the admin before migration 10: after it (and the
    prepare_warehouse step), the roles load and build on what is there."""
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_roles_existing")
    sources_dir = test_warehouse.settings.sources_dir
    some_models = ("--select", "+stg_crm__contacts lifecycle_stages")
    since_10 = [migration.version for migration in ddl.MIGRATIONS if migration.version >= 10]
    # today's loader writes what migration 13 adds: the audit's suppressed rows, and it reads the
    # (empty) suppression list
    loader_needs = [statement for statement in next(m for m in ddl.MIGRATIONS if m.version == 13).statements
                    if statement.startswith(("alter table raw._load_audit add column",
                                             f"create table if not exists {ddl.SUPPRESSION_LIST}"))]
    try:
        with psycopg.connect(dsn, autocommit=True) as admin, pytest.MonkeyPatch.context() as before_10:
            before_10.setattr(ddl, "MIGRATIONS", tuple(m for m in ddl.MIGRATIONS if m.version < 10))
            ddl.bootstrap(admin)
            for statement in loader_needs:
                admin.execute(statement)
            load_sources_until(admin, test_warehouse.pos_dsn, sources_dir,
                               DEMO_DATE - timedelta(days=1))
            for (table,) in admin.execute("select tablename from pg_tables where schemaname = 'raw'"
                                          ).fetchall():  # as the admin's loads made them
                admin.execute(sql.SQL("alter table {} owner to current_user").format(
                    sql.Identifier("raw", table)))
        run_dbt(dsn, local_midnight(DEMO_DATE), "build", *some_models, *NO_TESTS,
                work_dir=tmp_path)
        with psycopg.connect(dsn, autocommit=True) as admin:
            assert admin.execute("select pg_get_userbyid(relowner) from pg_class "
                                 "where oid = 'staging.stg_crm__contacts'::regclass"
                                 ).fetchone()[0] != ddl.TRANSFORMER
            assert ddl.bootstrap(admin) == since_10
            ddl.ensure_raw_tables(admin, load_sources().values())
        with psycopg.connect(login_dsn(dsn, "loader"), autocommit=True) as loader:
            load_sources_until(loader, test_warehouse.pos_dsn, sources_dir, DEMO_DATE)
            assert loader.execute("select count(*) from raw._load_audit where interval_end = %s",
                                  (local_midnight(DEMO_DATE),)).fetchone()[0] > 0
        run_dbt(login_dsn(dsn, "transformer"), local_midnight(DEMO_DATE), "build", *some_models,
                *NO_TESTS, work_dir=tmp_path)
        with psycopg.connect(login_dsn(dsn, "checker"), autocommit=True) as checker:
            for relation in ("staging.stg_crm__contacts", "reference.lifecycle_stages",
                             "raw.crm_contacts", "raw._load_audit"):
                assert checker.execute(f"select count(*) from {relation}").fetchone()[0] > 0
            assert checker.execute("""select count(*) from pg_class
                where oid in ('staging.stg_crm__contacts'::regclass,
                              'reference.lifecycle_stages'::regclass)
                  and relowner = %s::regrole""", (ddl.TRANSFORMER,)).fetchone() == (2,)
    finally:
        drop_database(test_warehouse.dsn, dsn)


def test_migration_12_takes_the_seeds_out_of_marts_and_the_observed_values_from_bi_reader(
        test_warehouse: SessionWarehouse) -> None:
    """A warehouse whose seeds dbt built in marts (before migration 12), with a staging view
    reading one: the migration drops them (the next build makes them in reference and internal,
    and the view again), and bi_reader keeps every column of the checks' results but the
    observed values."""
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_roles_migration_12")
    try:
        with psycopg.connect(dsn, autocommit=True) as admin, pytest.MonkeyPatch.context() as before:
            before.setattr(ddl, "MIGRATIONS", tuple(m for m in ddl.MIGRATIONS if m.version < 12))
            ddl.bootstrap(admin)
            with admin.transaction():
                admin.execute(f"set local role {ddl.TRANSFORMER}")
                admin.execute("create table marts.placeholder_emails (email varchar)")
                admin.execute("create table marts.lifecycle_stages (lifecycle_stage varchar)")
                admin.execute("grant select on marts.placeholder_emails, marts.lifecycle_stages "
                              "to bi_reader")
                admin.execute("create view staging.stg_emails as select email from "
                              "marts.placeholder_emails")
        with psycopg.connect(dsn, autocommit=True) as admin:
            assert 12 in ddl.bootstrap(admin)
            gone = admin.execute("""select to_regclass('marts.placeholder_emails'),
                to_regclass('marts.lifecycle_stages'), to_regclass('staging.stg_emails')""")
            assert gone.fetchone() == (None, None, None)
            schemas = dict(admin.execute("""select nspname, nspowner::regrole::text
                from pg_namespace where nspname in ('reference', 'internal')""").fetchall())
            assert schemas == {"reference": ddl.TRANSFORMER, "internal": ddl.TRANSFORMER}
            usage = admin.execute("""select has_schema_privilege('bi_reader', 'reference', 'usage'),
                has_schema_privilege('bi_reader', 'internal', 'usage'),
                has_schema_privilege('bi_pii_reader', 'internal', 'usage'),
                has_schema_privilege('trebol_checker', 'internal', 'usage'),
                pg_has_role('bi_pii_reader', 'bi_reader', 'member')""").fetchone()
            assert usage == (True, False, False, True, True)
            readable = {role: {column for (column,) in admin.execute(
                """select column_name from information_schema.columns
                   where table_schema = 'marts' and table_name = 'data_quality_results'
                     and has_column_privilege(%s, 'marts.data_quality_results', column_name,
                                              'select')""", (role,))}
                for role in ddl.BI_ROLES}
            assert readable[ddl.BI_ROLE] == set(ddl.QUALITY_RESULT_COLUMNS_FOR_BI)
            assert readable[ddl.BI_PII_ROLE] == readable[ddl.BI_ROLE] | {"observed_value"}
            assert ddl.bootstrap(admin) == []
    finally:
        drop_database(test_warehouse.dsn, dsn)
