"""The nightly DAG's dbt task (Cosmos ``dbt build``) on a copy of the demo marts: a build whose
only failures are data tests fails for good (no retry: the rows would be the same), a model's
error stays one Airflow retries."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from unittest import mock

import msgpack
import psycopg
import pytest
from airflow.sdk.exceptions import AirflowFailException

from trebol.airflow.dbt_build import dbt_build_operator, failed_data_tests
from trebol.warehouse.address import dsn_parts, role_conn_id

from ..helpers import DEMO_DATE, DemoMarts, SessionWarehouse, copy_database, drop_database, local_midnight

pytestmark = pytest.mark.integration
POINTS_TEST = "int_customers__audience_profile_points_to_expire_within_balance"


@pytest.fixture()
def marts_copy(test_warehouse: SessionWarehouse, demo_marts: DemoMarts,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A copy of the demo marts, reached through the transformer's Airflow connection."""
    dsn = copy_database(test_warehouse.dsn, demo_marts.dsn, "trebol_test_dbt_task")
    parts = dsn_parts(dsn)
    monkeypatch.setenv(f"AIRFLOW_CONN_{role_conn_id('transformer').upper()}", json.dumps(
        {"conn_type": "postgres", "host": parts.host, "port": parts.port, "login": parts.user,
         "password": parts.password, "schema": parts.dbname}))
    try:
        yield dsn
    finally:
        drop_database(test_warehouse.dsn, dsn)


def _build(test_warehouse: SessionWarehouse, select: list[str], as_of_at: str = "") -> None:
    """The DAG's ``dbt_build`` task (``dbt_build_operator``) of ``select``, run as Airflow runs it
    for the demo date (as of ``as_of_at`` when given, as after a backfill)."""
    operator = dbt_build_operator("dbt_build", test_warehouse.settings, select=select,
                                  as_of_at=as_of_at)
    context = {"logical_date": local_midnight(DEMO_DATE), "ti": SimpleNamespace(task_id="dbt_build"),
               "run_id": "test__dbt_task", "task": operator, "outlet_events": {}}
    # Cosmos runs dbt in this process and leaves the task's dbt environment in os.environ (in
    # Airflow, the task's own process): restored, so that later dbt runs of the session do
    # not inherit DBT_EXCLUDE_RESOURCE_TYPES
    with mock.patch.dict(os.environ):
        operator.execute(context)


def test_a_failed_data_test_fails_the_task_without_retry(test_warehouse: SessionWarehouse,
                                                         marts_copy: str) -> None:
    with psycopg.connect(marts_copy, autocommit=True) as conn:
        broken = conn.execute("""update intermediate.int_customers__audience_profile
            set points_to_expire = points_balance + 1
            where points_balance > 0 and points_to_expire is not null""").rowcount
    assert broken > 0
    with pytest.raises(AirflowFailException, match=rf"dbt data tests failed .*: {POINTS_TEST}$"):
        _build(test_warehouse, [f"test_name:expression_is_true,{POINTS_TEST}"])
    # the dbt artefact of the failed build is kept in the run's report folder
    kept = test_warehouse.settings.report_dir(DEMO_DATE) / "dbt_build_run_results.json"
    assert failed_data_tests(json.loads(kept.read_text())) == [POINTS_TEST]


def test_a_failed_model_leaves_the_task_to_airflows_retries(test_warehouse: SessionWarehouse,
                                                            marts_copy: str) -> None:
    with psycopg.connect(marts_copy, autocommit=True) as conn:
        conn.execute("alter table marts.loyalty_members rename to loyalty_members_gone")
    with pytest.raises(Exception) as raised:
        _build(test_warehouse, ["int_customers__audience_profile"])
    assert not isinstance(raised.value, AirflowFailException)
    kept = test_warehouse.settings.report_dir(DEMO_DATE) / "dbt_build_run_results.json"
    statuses = {result["unique_id"]: result["status"]
                for result in json.loads(kept.read_text())["results"]}
    assert statuses["model.trebol.int_customers__audience_profile"] == "error"
    assert failed_data_tests(json.loads(kept.read_text())) == []


@pytest.mark.parametrize(("data_test", "view", "key", "raw_table", "wrong"), [
    ("stg_pos__ticket_lines_net_is_gross_minus_discount", "stg_pos__ticket_lines", "ticket_id",
     "pos_ticket_lines", "net_amount = net_amount + 1"),
    ("relationships_stg_pos__tickets_store_id__store_id__ref_stg_pos__stores_", "stg_pos__tickets",
     "ticket_id", "pos_tickets", "store_id = 'no-such-store'"),
], ids=["a line view", "a staging view's per-row test"])
def test_the_views_per_row_tests_test_the_rows_the_run_loaded(
        test_warehouse: SessionWarehouse, marts_copy: str, data_test: str, view: str, key: str,
        raw_table: str, wrong: str) -> None:
    """A wrong row fails its view's per-row test while its batch is one the run loaded (interval
    end = the run's as-of moment), and is left to the earlier run that loaded it otherwise."""
    with psycopg.connect(marts_copy, autocommit=True) as conn:
        batch, record = conn.execute(f"""select load_batch_id, {key} from staging.{view}
            order by {key} limit 1""").fetchone()
        assert conn.execute(f"""update raw.{raw_table} set {wrong}
            where {key} = %s and _batch_id = %s""", (record, batch)).rowcount >= 1
    with pytest.raises(AirflowFailException, match=rf": {data_test}$"):
        _build(test_warehouse, [data_test])
    with psycopg.connect(marts_copy, autocommit=True) as conn:
        # the batch id, whichever sources share it (the POS tables are extracted together)
        assert conn.execute("""update raw._load_audit set interval_end = interval_end - interval '1 day'
            where batch_id = %s""", (batch,)).rowcount >= 1
    _build(test_warehouse, [data_test])


def test_a_staging_views_unique_test_looks_up_the_keys_the_run_loaded(
        test_warehouse: SessionWarehouse, marts_copy: str) -> None:
    """The key's unique test of a staging view (generic test unique_keys_of_this_run) fails on a
    key two rows hold once one of them comes from a batch the run loaded; a key held twice in an
    earlier run's batches alone is left to that run, unless the run's batches are bulk (a first
    build, as the demo's: every key)."""
    data_test = "unique_keys_of_this_run_stg_ecom__orders_order_id"
    with psycopg.connect(marts_copy, autocommit=True) as conn:
        conn.execute("alter table raw.ecom_orders drop constraint ecom_orders_versions_key")
        batch, order = conn.execute("""select load_batch_id, order_id from staging.stg_ecom__orders
            order by order_id limit 1""").fetchone()
        # the same version twice: the view shows the order twice
        assert conn.execute("""insert into raw.ecom_orders select * from raw.ecom_orders
            where order_id = %s and _batch_id = %s""", (order, batch)).rowcount == 1
        run_batch = conn.execute("""select load_batch_id from staging.stg_ecom__orders
            where load_batch_id <> %s group by load_batch_id order by count(*), load_batch_id
            limit 1""", (batch,)).fetchone()[0]
    with pytest.raises(AirflowFailException, match=rf": {data_test}$"):
        _build(test_warehouse, [data_test])
    with psycopg.connect(marts_copy, autocommit=True) as conn:
        # every batch but one of another day's orders loaded by an earlier run
        assert conn.execute("""update raw._load_audit set interval_end = interval_end - interval '1 day'
            where batch_id <> %s""", (run_batch,)).rowcount >= 1
    _build(test_warehouse, [data_test])
    with psycopg.connect(marts_copy, autocommit=True) as conn:
        # the second row of the order comes from the run's batch
        assert conn.execute("""update raw.ecom_orders set _batch_id = %s
            where ctid = (select max(ctid) from raw.ecom_orders where order_id = %s)""",
                            (run_batch, order)).rowcount == 1
    with pytest.raises(AirflowFailException, match=rf": {data_test}$"):
        _build(test_warehouse, [data_test])


def test_a_later_date_reuses_dbts_parse(test_warehouse: SessionWarehouse, marts_copy: str,
                                        capfd: pytest.CaptureFixture[str]) -> None:
    """The dbt tasks keep dbt's partial-parse file in Cosmos's cache, and the as-of moment is not
    one of the environment variables dbt records while parsing (a new value would send every
    model that reads it to be parsed again): the next night's build (a new as-of moment) parses
    only what changed, here nothing, instead of the whole project."""
    selected = ["stg_pos__stores"]
    _build(test_warehouse, selected)
    parse_file = test_warehouse.settings.dbt_cache_dir / "target" / "partial_parse.msgpack"
    recorded = msgpack.unpackb(parse_file.read_bytes(), strict_map_key=False)["env_vars"]
    assert "TREBOL_TIMEZONE" in recorded and "TREBOL_AS_OF_AT" not in recorded
    capfd.readouterr()
    _build(test_warehouse, selected, as_of_at=local_midnight(DEMO_DATE - timedelta(days=1)).isoformat())
    printed = capfd.readouterr().out
    # dbt says "Unable to do partial parsing because …" before a full parse
    assert "Done. PASS=" in printed and "partial parsing" not in printed.lower()


def test_fct_transactions_rules_are_check_constraints(test_warehouse: SessionWarehouse,
                                                      marts_copy: str) -> None:
    """The rules each transaction line obeys are check constraints of fct_transactions: a table
    made before them gets them on its next run, and a line a run writes that breaks one fails
    the task at once (no retry), naming the constraint."""
    rule = "fct_transactions_net_is_gross_minus_discount"
    with psycopg.connect(marts_copy, autocommit=True) as conn:
        declared = conn.execute("""select conname from pg_constraint
            where conrelid = 'marts.fct_transactions'::regclass and contype = 'c'
            and conname like 'fct_transactions_%'""").fetchall()
        assert rule in {name for (name,) in declared} and len(declared) == 6
        for (name,) in declared:  # as a table made before the checks were declared
            conn.execute(f"alter table marts.fct_transactions drop constraint {name}")
    _build(test_warehouse, ["fct_transactions"])
    with psycopg.connect(marts_copy, autocommit=True) as conn:
        assert conn.execute("""select count(*) from pg_constraint
            where conrelid = 'marts.fct_transactions'::regclass and contype = 'c'
            and conname like 'fct_transactions_%'""").fetchone()[0] == 6
        # the newest POS line, which the next incremental run writes again, made inconsistent
        assert conn.execute("""update raw.pos_ticket_lines set net_amount = net_amount + 1
            where (ticket_id, line_number, updated_at) = (select ticket_id, line_number, updated_at
                from raw.pos_ticket_lines order by updated_at desc, ticket_id, line_number
                limit 1)""").rowcount == 1
    with pytest.raises(AirflowFailException, match=rf"read the same\): constraint {rule}$"):
        _build(test_warehouse, ["fct_transactions"])
