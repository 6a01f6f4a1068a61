"""The nightly DAG end to end with real Airflow, dbt, Great Expectations and PostgreSQL.

Runs ``trebol run`` for the demo date, then a backfill of an earlier date, then the demo date
again: the marts (and the audiences, the activation) must be identical after every run of the
same date, and the re-run sends nothing more. Before the backfill, a
late loyalty export dated all next year arrives: the backfill's raw-batch checks fail, and the
push of that run must not happen while the rest of the run (marts, CLV, summary) does.

Every run is given the warehouse and the POS database with a password in their URLs (the session
warehouse's own one when it has one; else a random one, which the embedded server's trust
authentication accepts): no log, report, summary, XCom, Airflow database or dbt artefact, nor
what ``trebol run`` prints, may hold it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import yaml
from PIL import Image

from trebol import cli
from trebol.activation.config import load_activation
from trebol.demo import SimulationResult
from trebol.demo.endpoints import receiver_dir
from trebol.quality import gate, results
from trebol.quality.rules import load_rules
from trebol.summary import HISTORY_TABLES, marts_checksum
from trebol.warehouse.address import DsnParts, build_dsn, dsn_parts
from trebol.warehouse.catalog import query_frame

from ..browser import render_page
from ..helpers import DEMO_DATE, PROJECT_DIR, SessionWarehouse, local_midnight

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
BACKFILL_DATE = DEMO_DATE - timedelta(days=10)


def _run(run_date: date, warehouse: SessionWarehouse, printed: io.StringIO, exit_code: int = 0) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(["run", "--date", run_date.isoformat()])
    printed.write(out.getvalue())
    sys.stdout.write(out.getvalue())
    assert code == exit_code
    summary = json.loads((warehouse.settings.reports_dir / run_date.isoformat() /
                          "summary.json").read_text())
    with warehouse.connect() as conn:
        summary["checksum_now"] = marts_checksum(conn)
    return summary


LATE_ROWS = 30


def _write_late_future_export(sources_dir: Path, day: date) -> Path:
    """A second loyalty points export for ``day`` whose entries are all dated next year."""
    late = sources_dir / "loyalty" / "points" / f"{day.isoformat()}-late.csv"
    with late.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("entry_id", "card_number", "entry_type", "points", "reference_id",
                         "occurred_at"))
        for i in range(LATE_ROWS):
            writer.writerow((f"LATE{i:06d}", "9900000001", "earn", 10, "",
                             f"{day.year + 1}-{day.month:02d}-{day.day:02d}T12:00:00+02:00"))
    return late


def _with_password(dsn: str, password: str) -> str:
    parts = dsn_parts(dsn)
    return build_dsn(DsnParts(parts.host, parts.port, parts.user, password, parts.dbname))


@pytest.fixture(scope="module")
def secret(test_warehouse: SessionWarehouse) -> str:
    """The password every run's warehouse and POS URLs carry."""
    return dsn_parts(test_warehouse.dsn).password or f"S3cret-{secrets.token_hex(8)}"


@contextlib.contextmanager
def _terminating_the_pos_tickets_load(warehouse: SessionWarehouse) -> Iterator[dict]:
    """While the block runs, the run's pos_tickets load waits to merge (a lock held on its raw
    table) and the server terminates its connection; yields what was struck."""
    database = dsn_parts(warehouse.dsn).dbname
    locked, struck = threading.Event(), {}

    def strike() -> None:
        with warehouse.connect() as watcher, psycopg.connect(warehouse.dsn) as blocker:
            blocker.execute("lock table raw.pos_tickets in share mode")
            locked.set()
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and "pid" not in struck:
                row = watcher.execute("""select pid from pg_stat_activity where datname = %s
                    and wait_event_type = 'Lock' and query ilike '%%raw%%pos_tickets%%'""",
                                      (database,)).fetchone()
                if row:
                    struck["pid"] = row[0]
                    struck["terminated"] = watcher.execute("select pg_terminate_backend(%s)",
                                                           row).fetchone()[0]
                time.sleep(0.1)
            blocker.rollback()

    striker = threading.Thread(target=strike)
    striker.start()
    assert locked.wait(30)
    try:
        yield struck
    finally:
        striker.join()


def _leave_restarting(warehouse: SessionWarehouse, day: date, task_id: str) -> None:
    """Mark a task of the DAG run of ``day`` 'restarting' in Airflow's database."""
    logical = local_midnight(day).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with contextlib.closing(sqlite3.connect(warehouse.settings.airflow_home / "airflow.db")) as db, db:
        marked = db.execute("""update task_instance set state = 'restarting'
                where dag_id = 'trebol_nightly' and task_id = ? and run_id = (select run_id
                from dag_run where dag_id = 'trebol_nightly' and logical_date = ?)""",
                            (task_id, logical)).rowcount
    assert marked == 1, (task_id, logical)


@pytest.fixture(scope="module")
def runs(test_warehouse: SessionWarehouse, demo_sources: SimulationResult,
         secret: str) -> dict[str, dict]:
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TREBOL_WAREHOUSE_DSN", _with_password(test_warehouse.dsn, secret))
        patch.setenv("TREBOL_POS_DSN", _with_password(test_warehouse.pos_dsn, secret))
        first = _run(DEMO_DATE, test_warehouse, printed)
        _write_late_future_export(test_warehouse.settings.sources_dir,
                                  BACKFILL_DATE - timedelta(days=1))
        backfill = _run(BACKFILL_DATE, test_warehouse, printed, exit_code=1)
        with test_warehouse.connect() as conn:
            backfill_state = {
                "segments_as_of": conn.execute(
                    "select distinct as_of_date from marts.customer_segments").fetchall(),
                "latest_purchase": conn.execute(
                    "select max(last_purchase_at) from marts.customer_segments").fetchone()[0],
                "customers_as_of": conn.execute(
                    "select distinct as_of_date from marts.dim_customers").fetchall(),
                "history_dates": conn.execute(
                    "select distinct as_of_date from marts.segment_history order by 1").fetchall(),
            }
        # the first run's summarize as a run killed in it leaves it once cleared: the re-run
        # must still run it (dag.test() never runs a 'restarting' task: it waited for ever)
        _leave_restarting(test_warehouse, DEMO_DATE, "summarize")
        # the re-run also meets a fault Airflow must retry (test_a_load_cut_off_…)
        patch.setenv("TREBOL_RETRY_DELAY_SECONDS", "2")
        with _terminating_the_pos_tickets_load(test_warehouse) as struck:
            again = _run(DEMO_DATE, test_warehouse, printed)
    return {"first": first, "backfill": backfill, "again": again, "struck": struck,
            "backfill_state": backfill_state, "printed": printed.getvalue()}


def test_no_secret_is_printed_logged_or_stored(runs: dict[str, dict], secret: str,
                                               test_warehouse: SessionWarehouse) -> None:
    """Four runs with a password in both URLs: it is in none of what ``trebol run`` printed, nor
    in any file under TREBOL_HOME (Airflow's logs and database with its XComs, the reports with
    the summaries, the dbt run results and the Data Docs, the file drops) but the warehouse's
    own data files and the source exports."""
    settings = test_warehouse.settings
    assert "***" in runs["printed"] and secret not in runs["printed"]
    skipped = {settings.embedded_data_dir.resolve(), settings.sources_dir.resolve()}
    files = [path for path in settings.home.rglob("*") if path.is_file()
             and not any(path.resolve().is_relative_to(folder) for folder in skipped)]
    assert any(path.name == "airflow.db" for path in files)
    assert any(path.name == "summary.json" for path in files)
    assert any(path.name.endswith("run_results.json") for path in files)
    holding = [str(path) for path in files if secret.encode() in path.read_bytes()]
    assert holding == [], holding
def test_a_rerun_after_a_backfill_leaves_the_same_marts(runs: dict[str, dict]) -> None:
    """The demo date run again (after a backfill of an earlier date ran in between) leaves
    every layer dbt and the activation build as the first run left them."""
    first, again = runs["first"], runs["again"]
    assert first["marts_checksum"] == again["marts_checksum"] == again["checksum_now"]
    # the check results and the sync runs are logs: every run records its checks and its syncs
    # (which find nothing to send) under its own run id; raw keeps the backfill's batches
    for summary in (first, again):
        summary["rows_per_layer"]["marts"].pop("data_quality_results")
        summary["rows_per_layer"]["activation"].pop("sync_runs")
    for summary in (first, again):  # the history tables and the staging keep the backfill's date
        for table in HISTORY_TABLES:
            summary["rows_per_layer"]["marts"].pop(table, None)
        for table in ("audience_members", "staged_audiences", "holdouts"):
            summary["rows_per_layer"]["activation"].pop(table)
    for layer in ("marts", "audiences", "activation"):
        assert first["rows_per_layer"][layer] == again["rows_per_layer"][layer], layer
    assert first["rows_per_layer"]["marts"]["customer_segments"] > 100


def test_backfill_computes_as_of_its_date_and_leaves_the_current_marts(runs: dict[str, dict]) -> None:
    """The backfill's summary (its checks, its segments) is of its own date; after it, what BI
    reads is the newest date's again, exactly (rebuild_current_marts)."""
    state = runs["backfill"]
    assert state["as_of_date"] == BACKFILL_DATE.isoformat()
    assert runs["backfill"]["marts_checksum"] != runs["first"]["marts_checksum"]
    assert runs["backfill"]["checksum_now"] == runs["first"]["marts_checksum"]
    state = runs["backfill_state"]
    assert state["segments_as_of"] == state["customers_as_of"] == [(DEMO_DATE,)]
    assert state["latest_purchase"] >= local_midnight(BACKFILL_DATE)
    assert runs["again"]["marts_checksum"] == runs["first"]["marts_checksum"]
    # the history keeps both dates, and the demo date's rows are those of its first run
    assert runs["again"]["history_checksum"] == runs["first"]["history_checksum"]
    # the CLV predictions of the demo date are those of its first run, the backfill has its own
    clv = [runs[name]["predicted_value"] for name in ("first", "backfill", "again")]
    assert clv[0]["checksum"] and clv[0]["checksum"] == clv[2]["checksum"]
    assert clv[1]["checksum"] != clv[0]["checksum"]
    assert state["history_dates"] == [(BACKFILL_DATE,), (DEMO_DATE,)]


def test_nothing_lost_between_sources_and_raw(runs: dict[str, dict],
                                              test_warehouse: SessionWarehouse) -> None:
    with test_warehouse.connect() as conn:
        per_source = conn.execute("""
            select source, sum(rows_read), sum(rows_loaded), sum(rows_quarantined),
                   sum(rows_suppressed), count(*)
            from raw._load_audit group by source order by source""").fetchall()
        in_quarantine = dict(conn.execute(
            "select source, count(*) from raw._quarantine group by source").fetchall())
    sources = {row[0]: row[1:] for row in per_source}
    assert set(sources) >= {"pos_tickets", "ecom_orders", "loyalty_points", "crm_contacts"}
    for name, (read, loaded, quarantined, suppressed, _batches) in sources.items():
        assert read == loaded + quarantined + suppressed, name
        assert suppressed == 0, name  # nobody was erased: the suppression list is empty
        assert quarantined == in_quarantine.get(name, 0), name
    assert sources["ecom_orders"][4] == test_warehouse.settings.demo_days


def test_quality_checks_and_dbt_tests_all_passed(runs: dict[str, dict],
                                                 test_warehouse: SessionWarehouse) -> None:
    report = test_warehouse.settings.reports_dir / DEMO_DATE.isoformat()
    for name in ("first", "again"):
        assert runs[name]["checks"]["errors"] == [], runs[name]["checks"]
        assert runs[name]["activation"] == "pushed"
    # every expectation of the mart suites and of the batch suite ran (the per-source raw suites
    # only on sources that brought rows)
    suites = PROJECT_DIR / "expectations" / "gx" / "expectations"
    always = sum(len(json.loads(path.read_text())["expectations"])
                 for path in [*suites.glob("marts_*.json"), suites / "activation_audiences.json",
                              suites / "raw_batches.json"])
    assert runs["again"]["checks"]["passed"] >= always >= 10
    statuses = {}
    for task_id in ("dbt_build", "dbt_build_value"):
        dbt_results = json.loads((report / f"{task_id}_run_results.json").read_text())["results"]
        built = {result["unique_id"]: result["status"] for result in dbt_results}
        assert not set(built) & set(statuses) - {"operation.trebol.trebol-on-run-start-0",
                                                 "operation.trebol.trebol-on-run-end-0"}
        statuses.update(built)
    # the nightly build leaves the unit tests to CI (test_dbt_unit_tests)
    assert not any(uid.startswith("unit_test.") for uid in statuses)
    assert any(uid.startswith("test.trebol.") for uid in statuses)
    assert any(uid.startswith("model.trebol.stg_") for uid in statuses)
    assert {"model.trebol.customer_rfmt", "model.trebol.customer_value",
            "model.trebol.service_recovery_queue", "model.trebol.raw_source_days",
            "model.trebol.value_distribution_drift", "model.trebol.audience_consent"} <= set(statuses)
    # the exposures (audiences, dashboards) are selected with their models and have nothing to run
    declared = {f"exposure.trebol.{exposure['name']}" for path in
                (PROJECT_DIR / "dbt_project" / "models").rglob("_*__exposures.yml")
                for exposure in yaml.safe_load(path.read_text())["exposures"]}
    exposures = {uid: status for uid, status in statuses.items() if uid.startswith("exposure.")}
    assert set(exposures) == declared and len(declared) >= 5 and set(exposures.values()) == {"no-op"}
    assert {status for uid, status in statuses.items() if uid not in exposures} <= {
        "success", "pass", "warn"}, statuses
    docs = Path(runs["again"]["reports"]["data_docs"])
    assert docs.name == "index.html" and docs.parent.parent == report and docs.exists()


def test_every_task_ran_in_airflow(runs: dict[str, dict], test_warehouse: SessionWarehouse) -> None:
    db = test_warehouse.settings.airflow_home / "airflow.db"
    with sqlite3.connect(db) as conn:
        states = conn.execute("""
            select task_id, state from task_instance
            where run_id = (select run_id from dag_run where dag_id = 'trebol_nightly'
                            order by start_date desc limit 1)
        """).fetchall()
    tasks = {task for task, _ in states}
    assert {"prepare_warehouse", "extract_load", "check_raw_batches", "dbt_build", "fit_clv",
            "dbt_build_value", "stage_audiences", "check_marts", "list_syncs", "push_audiences",
            "summarize", "fail_run"} <= tasks
    # nothing failed, so the task that fails a run was skipped; the newest date rebuilds nothing
    skipped = {"fail_run", "rebuild_current_marts"}
    assert {state for task, state in states if task not in skipped} == {"success"}
    assert {dict(states)[task] for task in skipped} == {"skipped"}


def test_a_failed_raw_check_stops_that_runs_push_and_says_why(
        runs: dict[str, dict], test_warehouse: SessionWarehouse) -> None:
    backfill = runs["backfill"]
    assert backfill["activation"] == "stopped by the quality gate"
    [error] = backfill["checks"]["errors"]
    assert error.startswith("raw_batches: expect_column_values_to_be_between(quarantined_share)")
    assert "source=loyalty_points; quarantined_share=1" in error
    # the run went on as far as the gate: marts and CLV as of the backfill date, and the summary
    assert backfill["customers_per_segment"]["lifecycle_stage"]
    assert backfill["predicted_value"]["checksum"]
    logical = local_midnight(BACKFILL_DATE).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    db = test_warehouse.settings.airflow_home / "airflow.db"
    with sqlite3.connect(db) as conn:
        states = dict(conn.execute("""
            select task_id, state from task_instance where run_id = (
                select run_id from dag_run where dag_id = 'trebol_nightly' and logical_date like ?)
            and map_index < 1""", (logical + "%",)).fetchall())
    assert states["check_raw_batches"] == "failed"
    assert states["push_audiences"] == "upstream_failed"
    assert states["check_marts"] == states["dbt_build"] == states["dbt_build_value"] == "success"
    assert states["summarize"] == "success"
    assert states["fail_run"] == "failed"
    with test_warehouse.connect() as conn:
        pushed = conn.execute("select count(*) from activation.sync_runs where as_of_date = %s",
                              (BACKFILL_DATE,)).fetchone()[0]
        late = conn.execute("""select count(*), min(reason) from raw._quarantine
            where source = 'loyalty_points' and batch_id like '%%-late.csv'""").fetchone()
        recorded = conn.execute("""select count(*) from marts.data_quality_results
            where as_of_date = %s and not success and severity = 'error'""",
                                (BACKFILL_DATE,)).fetchone()[0]
    assert pushed == 0
    # nothing lost: the late export's rows are in quarantine with the loader's reason
    assert late[0] == LATE_ROWS and "occurred_at" in late[1]
    assert recorded == 1


def test_value_tiers_and_churn_risk_come_from_the_predictions(
        runs: dict[str, dict], test_warehouse: SessionWarehouse) -> None:
    """After fit_clv, high potential is the top share by predicted CLV of the run's date, and the
    service queue's churn risk is the fit's for repeat buyers (the lifecycle rule for the
    others)."""
    with test_warehouse.connect() as conn:
        customers = conn.execute("""
            select v.customer_key, v.value_tier, v.value_tier_basis, v.predicted_clv,
                   c.predicted_clv, v.is_high_performer, v.net_value_12m
            from marts.customer_value v
            left join marts.customer_clv c
                on c.customer_key = v.customer_key and c.as_of_date = v.as_of_date""").fetchall()
        queue = conn.execute("""
            select q.churn_risk_basis, q.churn_risk, c.churn_risk, c.frequency
            from marts.service_recovery_queue q
            left join marts.customer_clv c
                on c.customer_key = q.customer_key and c.as_of_date = q.as_of_date""").fetchall()
    assert customers and {row[2] for row in customers} == {"predicted_clv"}
    assert all(row[3] == row[4] for row in customers)
    # the top 20 % by predicted CLV (ties sharing a rank), above zero, unless already high
    # performers or below zero
    ranked = sorted((row[4] for row in customers), reverse=True)
    top = {row[0] for row in customers
           if ranked.index(row[4]) + 1 <= 0.2 * len(ranked) and row[4] > 0}
    potential = {row[0] for row in customers if row[1] == "high_potential"}
    assert potential == {row[0] for row in customers
                         if row[0] in top and not row[5] and row[6] >= 0}
    assert potential
    assert queue
    for basis, churn_risk, predicted_risk, frequency in queue:
        if frequency:
            assert basis == "predicted_clv" and float(churn_risk) == pytest.approx(predicted_risk, abs=5e-5)
        else:
            assert basis == "lifecycle_stage" and churn_risk is None


def webhook_state(settings, sync_name: str) -> dict[str, dict]:
    """What the demo's webhook receiver holds for a sync: its accepted batches replayed."""
    state: dict[str, dict] = {}
    path = receiver_dir(settings) / f"{sync_name}.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []  # no batch yet
    for line in lines:
        for record in json.loads(line)["records"]:
            if record["operation"] == "remove":
                state.pop(record["customer_key"], None)
            else:
                state[record["customer_key"]] = record["fields"]
    return state


def test_every_sync_delivered_only_consenting_members_of_its_audience(
        runs: dict[str, dict], test_warehouse: SessionWarehouse) -> None:
    """The first run delivers every staged member but the control group, to every destination
    (the file drop's snapshot, the webhook receiver's state); the re-runs of the date send
    nothing more; what was delivered holds only customers of the audience whose every CRM
    contact consents (straight from raw) and never a held-out one."""
    config = load_activation(PROJECT_DIR / "config" / "destinations.yml")
    first = {sync["sync"]: sync for sync in runs["first"]["syncs"]}
    assert set(first) == {spec.name for spec in config.syncs}
    for sync in first.values():
        assert sync["status"] == "succeeded" and sync["failed"] == sync["removed"] == 0, sync
        assert sync["added"] == sync["members"] - sync["held_out"], sync
    assert sum(sync["added"] for sync in first.values()) > 0
    assert sum(sync["held_out"] for sync in first.values()) > 0
    assert {(sync["sync"], sync["added"], sync["changed"], sync["removed"])
            for sync in runs["again"]["syncs"]} == {(spec.name, 0, 0, 0) for spec in config.syncs}
    with test_warehouse.connect() as conn:
        consenting = {row[0] for row in conn.execute("""
            select k.customer_key from marts.customer_source_keys k
            inner join raw.crm_contacts c on k.source = 'crm' and k.source_id = c.contact_id
            group by k.customer_key
            having bool_and(c.unsubscribed_at is null)
                and bool_and(c.marketing_consent or c._valid_to is not null)
                and bool_or(c._valid_to is null)""")}
        emails = dict(conn.execute("select customer_key, email from marts.dim_customers"))
        for spec in config.syncs:
            delivered = dict(conn.execute("select customer_key, fields from activation.sync_state "
                                          "where sync_name = %s", (spec.name,)).fetchall())
            audience = {row[0] for row in conn.execute(
                f"select customer_key from audiences.{spec.audience}")}
            held = {row[0] for row in conn.execute(
                "select customer_key from activation.holdouts where audience = %s", (spec.audience,))}
            assert len(delivered) == first[spec.name]["added"]
            assert set(delivered) <= consenting & audience and not set(delivered) & held
            assert all(fields["email"] == emails[key] for key, fields in delivered.items())
            kind = config.destinations[spec.destination].type
            if kind == "file":
                folder = (test_warehouse.settings.file_drop_dir / spec.destination / spec.name
                          / DEMO_DATE.isoformat())
                with (folder / "snapshot.csv").open(newline="", encoding="utf-8") as handle:
                    snapshot = {row["customer_key"]: row["email"] for row in csv.DictReader(handle)}
                assert snapshot == {key: fields["email"] for key, fields in delivered.items()}
                assert (folder / "_SUCCESS").exists()
            else:
                assert webhook_state(test_warehouse.settings, spec.name) == delivered


def test_identity_resolution_matches_the_ground_truth(runs: dict[str, dict],
                                                      test_warehouse: SessionWarehouse) -> None:
    """Pairwise precision and recall of "same person" against the simulator's identities."""
    truth_file = test_warehouse.settings.sources_dir / "ground_truth" / "identities.csv"
    with truth_file.open(newline="") as handle:
        person = {(row["source"], row["source_id"]): row["person_id"] for row in csv.DictReader(handle)}
    with test_warehouse.connect() as conn:
        key = {(source, source_id): customer_key for source, source_id, customer_key in conn.execute(
            "select source, source_id, customer_key from marts.customer_source_keys")}
    assert set(person) <= set(key), "every ground-truth record is in the crosswalk"
    records = sorted(person)
    same_person = same_key = both = 0
    for i, a in enumerate(records):
        for b in records[i + 1:]:
            truly, predicted = person[a] == person[b], key[a] == key[b]
            same_person += truly
            same_key += predicted
            both += truly and predicted
    precision, recall = both / same_key, both / same_person
    print(f"identity: precision {precision:.4f}, recall {recall:.4f} over {same_person} true pairs")
    assert precision >= 0.98 and recall >= 0.98, (precision, recall)


def test_quality_gate_fails_on_bad_mart_rows(runs: dict[str, dict],
                                             test_warehouse: SessionWarehouse,
                                             tmp_path: Path) -> None:
    run = gate.QualityRun(dsn=test_warehouse.dsn, as_of_date=DEMO_DATE,
                          interval_end=local_midnight(DEMO_DATE), run_id="test__bad_mart_rows",
                          timezone="Europe/Madrid",
                          expectations_dir=test_warehouse.settings.expectations_dir,
                          report_dir=tmp_path)
    with test_warehouse.connect() as conn:
        # ranges and keys are the contracts' (dbt stops the build); a NaN prediction is GX's to find
        key, clv = conn.execute("""select customer_key, predicted_clv from marts.customer_clv
            where as_of_date = %s order by customer_key limit 1""", (DEMO_DATE,)).fetchone()
        conn.execute("update marts.customer_clv set predicted_clv = 'NaN' "
                     "where as_of_date = %s and customer_key = %s", (DEMO_DATE, key))
        try:
            with pytest.raises(gate.QualityGateError,
                               match=rf"marts_customer_clv: .*\(predicted_clv\).*customer_key={key}"):
                gate.check_marts(conn, run, load_rules())
        finally:
            conn.execute("update marts.customer_clv set predicted_clv = %s "
                         "where as_of_date = %s and customer_key = %s", (clv, DEMO_DATE, key))
        assert marts_checksum(conn) == runs["again"]["marts_checksum"]
        assert results.run_outcome(conn, "test__bad_mart_rows")["failed"] == 1


def test_a_load_cut_off_by_the_server_is_retried_by_airflow_and_the_run_ends_clean(
        runs: dict[str, dict], test_warehouse: SessionWarehouse) -> None:
    """The re-run's pos_tickets load, waiting to merge (the fixture holds a lock on its raw
    table), has its connection terminated by the server: a transient error, so Airflow retries
    the task (after TREBOL_RETRY_DELAY_SECONDS), and the run ends as a clean one: same marts,
    pushed."""
    db = test_warehouse.settings.airflow_home / "airflow.db"
    with sqlite3.connect(db) as conn:
        tries = conn.execute("""select try_number, state from task_instance
            where run_id = (select run_id from dag_run where dag_id = 'trebol_nightly'
                            order by start_date desc limit 1)
            and task_id = 'extract_load' and rendered_map_index = 'pos_tickets'""").fetchone()
    assert runs["struck"].get("terminated") is True
    # the re-run of the date re-ran the first run's record (its try 1): try 2 was struck, try 3 ran
    assert tries == (3, "success")
    summary = runs["again"]
    assert summary["marts_checksum"] == runs["first"]["marts_checksum"]
    assert summary["activation"] == "pushed" and summary["checks"]["errors"] == []


def _report_specs(html: str) -> dict[str, list[dict]]:
    """The data of each chart the run report embeds (its Vega-Lite spec's one dataset)."""
    specs = {}
    for name, text in re.findall(r'<script type="application/json" id="spec-([\w-]+)">(.*?)</script>',
                                 html, re.S):
        [values] = json.loads(text)["datasets"].values()
        specs[name] = values
    return specs


def test_the_run_report_shows_the_night_with_its_charts_offline(
        runs: dict[str, dict], test_warehouse: SessionWarehouse) -> None:
    """The demo date's report (the re-run, which met a load Airflow retried): it renders in a
    headless browser with every chart drawn and no error, and what it shows is what the
    warehouse and Airflow hold, recomputed here from their rows."""
    report = Path(runs["again"]["reports"]["run_report"])
    assert report == test_warehouse.settings.reports_dir / DEMO_DATE.isoformat() / "index.html"
    assert f"run report  {report}" in runs["printed"]
    html = report.read_text(encoding="utf-8")
    specs = _report_specs(html)
    segmentations = ("value_tier", "rfm_segment", "lifecycle_stage")
    charts = ["timeline", "rfm", "clv", "syncs",
              *(f"{kind}-{name}" for kind in ("segments", "migration") for name in segmentations)]
    assert set(specs) == set(charts)
    png = report.parent / "run_report.png"
    rendered = render_page(report, png, [f"#chart-{name} svg" for name in charts] + ["img.plot"])
    assert rendered.errors == []
    assert all(count >= 1 for count in rendered.counts.values()), rendered.counts
    assert 'class="status ok"' in rendered.dom and "The run succeeded" in rendered.dom
    with Image.open(png) as image:  # a page, not a blank: many colours, dark text on light
        darkest, lightest = image.convert("L").getextrema()
        assert image.height > 3000 and len(image.convert("RGB").getcolors(1 << 20) or []) > 200
        assert darkest < 60 and lightest > 240

    # the timeline: every task instance that ended before the report, as Airflow recorded it
    spans = {row["task"]: row for row in specs["timeline"]}
    db = test_warehouse.settings.airflow_home / "airflow.db"
    with sqlite3.connect(db) as conn:
        instances = conn.execute("""
            select task_id, map_index, rendered_map_index, state, try_number, start_date
            from task_instance where run_id = (select run_id from dag_run
                where dag_id = 'trebol_nightly' order by start_date desc limit 1)
            and task_id not in ('find_newest_date', 'rebuild_current_marts', 'fail_run')""").fetchall()
    assert len(spans) == len(instances) >= 20
    tries = {}
    for task_id, map_index, rendered, state, try_number, started in instances:
        label = task_id if map_index < 0 else f"{task_id}[{rendered}]"
        span, tries[label] = spans[label], try_number
        assert span["state"] == (state if task_id != "summarize" else "running")
        start = datetime.fromisoformat(span["start"]).replace(tzinfo=None)
        assert abs((start - datetime.fromisoformat(started)).total_seconds()) < 1
    # the pos_tickets load struck by the server shows its last try (the row of the table)
    retried = re.search(r"<td>extract_load\[pos_tickets\]</td><td>success</td><td class=\"n\">(\d+)<",
                        html)
    assert retried and int(retried.group(1)) == tries["extract_load[pos_tickets]"] >= 2

    with test_warehouse.connect() as conn:
        history = query_frame(conn, "select * from marts.segment_history where as_of_date in (%s, %s)",
                              (DEMO_DATE, BACKFILL_DATE))
        rfmt = query_frame(conn, "select r_score, f_score, monetary_total::float8 as m "
                                 "from marts.customer_rfmt")
        clv = query_frame(conn, "select churn_risk_band from marts.customer_clv where as_of_date = %s "
                                "and predicted_clv is not null", (DEMO_DATE,))
    today, before = (history[history["as_of_date"] == day] for day in (DEMO_DATE, BACKFILL_DATE))
    for column in ("value_tier", "rfm_segment", "lifecycle_stage"):
        shown = {row["segment"]: (row["customers"], row["change"]) for row in specs[f"segments-{column}"]}
        now, then = today[column].value_counts(), before[column].value_counts()
        assert shown == {segment: (int(now.get(segment, 0)), int(now.get(segment, 0) - then.get(segment, 0)))
                         for segment in set(now.index) | set(then.index)}
        # the migration from the previous snapshot (the backfill's date) to the run's
        moved = before[["customer_key", column]].merge(
            today[["customer_key", column]], on="customer_key", how="outer",
            suffixes=("_from", "_to")).fillna("(none)")
        expected = moved.groupby([f"{column}_from", f"{column}_to"]).size().to_dict()
        assert {(row["from_segment"], row["to_segment"]): row["customers"]
                for row in specs[f"migration-{column}"]} == expected
    grid = rfmt.groupby(["r_score", "f_score"]).agg(customers=("m", "size"), mean=("m", "mean"))
    shown_grid = {(row["r_score"], row["f_score"]): row for row in specs["rfm"]}
    assert set(shown_grid) == set(grid.index)
    for cell, row in shown_grid.items():  # the mean rounded to cents
        assert row["customers"] == grid.loc[cell, "customers"]
        assert abs(row["mean_monetary"] - grid.loc[cell, "mean"]) <= 0.005 + 1e-9
    shown_bands = pd.DataFrame(specs["clv"]).groupby("churn_risk_band")["customers"].sum().to_dict()
    assert shown_bands == clv["churn_risk_band"].value_counts().to_dict()
    assert {row["sync"] for row in specs["syncs"]} == {sync.name for sync in load_activation().syncs}


def test_the_report_of_a_failed_run_says_first_what_failed_and_what_was_not_pushed(
        runs: dict[str, dict], test_warehouse: SessionWarehouse) -> None:
    html = Path(runs["backfill"]["reports"]["run_report"]).read_text(encoding="utf-8")
    main = html[html.index("<main>"):]
    status = main[:main.index("</div>\n\n<div class=\"tiles\">")]
    # the first thing on the page, before the pipeline and everything else
    assert main.index('id="status"') < main.index('id="pipeline"')
    assert 'class="status failed"' in status and "The run failed:" in status
    assert "<li>check_raw_batches: failed</li>" in status
    assert "<li>push_audiences: upstream failed</li>" in status
    assert "quarantined_share" in status  # the quality error itself
    syncs = ", ".join(sync.name for sync in load_activation().syncs)
    assert f"Activation: stopped by the quality gate. Not pushed: {syncs}." in status
