"""The Great Expectations gate on real data: a clean simulator run passes every suite, and each
fault makes its intended suite fail with a message naming what and where.

Raw batches: a simulated world of its own (own warehouse and POS databases), loaded day by day
as the DAG does, the suites reading the dbt models of ``models/quality``; three days carry one
fault each in their e-commerce export (30 % of the orders with negative amounts and every order
without its email, every date a year ahead, a tenth of the usual volume). Marts: the session's
demo marts (dbt-built), with the CLV step and the staged audiences, then customers who lost their
email, CLV predictions that jump against the previous date or tell no customer apart, and an
audience member without consent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml

from trebol.activation import staging
from trebol.activation.config import load_activation
from trebol.clv import predictions
from trebol.demo import SimulationSpec, simulate
from trebol.extract.sources import load_sources
from trebol.quality import gate
from trebol.quality.rules import QualityRulesError, load_rules
from trebol.warehouse import ddl

from ..browser import rendered_dom, screenshot
from ..helpers import (
    DEMO_CONFIG_DIR,
    DEMO_DATE,
    PROJECT_DIR,
    DemoMarts,
    SessionWarehouse,
    drop_database,
    fresh_database,
    load_sources_until,
    local_midnight,
    run_dbt,
)

pytestmark = pytest.mark.integration
DBT_VARS = yaml.safe_load((PROJECT_DIR / "dbt_project" / "dbt_project.yml").read_text())["vars"]
END = date(2026, 3, 2)
TIMEZONE = "Europe/Madrid"
# the day whose export carries each fault, and the as-of date of the run that loads it
NEGATIVE_DAY, FUTURE_DAY, THIN_DAY = END - timedelta(days=3), END - timedelta(days=2), END - timedelta(days=1)


@dataclass(frozen=True)
class Outcome:
    """What the raw-batch check of one run found: its error (if raised) and its failed checks."""

    error: str | None
    failed: list[tuple[str, str, str | None, str, str]]  # suite, expectation, column, severity, observed
    suites: set[str]


def _failed(conn: psycopg.Connection, run_id: str) -> tuple[list[tuple], set[str]]:
    rows = conn.execute("""
        select suite, expectation, column_name, severity, observed_value, success
        from marts.data_quality_results where run_id = %s order by suite, expectation, column_name""",
        (run_id,)).fetchall()
    return [row[:5] for row in rows if not row[5]], {row[0] for row in rows}


def _check(run: gate.QualityRun, conn: psycopg.Connection, check) -> Outcome:
    try:
        check(conn, run)
        error = None
    except gate.QualityGateError as raised:
        error = str(raised)
    failed, suites = _failed(conn, run.run_id)
    return Outcome(error, failed, suites)


def _quality_run(dsn: str, day: date, settings, report_dir: Path) -> gate.QualityRun:
    return gate.QualityRun(dsn=dsn, as_of_date=day, interval_end=local_midnight(day),
                           run_id=f"test__{day.isoformat()}", timezone=TIMEZONE,
                           expectations_dir=settings.expectations_dir,
                           report_dir=report_dir / day.isoformat())


def _rewrite_orders(path: Path, change) -> int:
    """Rewrite a JSONL export line by line (``change(index, order)`` returns the order or None to
    drop it); the number of orders the file held."""
    orders = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    kept = [changed for i, order in enumerate(orders) if (changed := change(i, order)) is not None]
    path.write_text("".join(json.dumps(order) + "\n" for order in kept), encoding="utf-8")
    return len(orders)


def _negative_amounts_no_email(i: int, order: dict) -> dict:
    order["email"] = None
    if i % 10 < 3:
        for line in order["lines"]:
            line["unit_price"] = -abs(line["unit_price"]) or -1.0
    return order


def _next_year(_i: int, order: dict) -> dict:
    for field in ("ordered_at", "updated_at"):
        moment = order[field]
        order[field] = f"{int(moment[:4]) + 1}{moment[4:]}"
    return order


def _a_tenth(i: int, order: dict) -> dict | None:
    return order if i % 10 == 0 else None


@pytest.fixture(scope="module")
def raw_outcomes(test_warehouse: SessionWarehouse, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[dict[str, Outcome]]:
    """A clean first load, then one faulty day after another, each checked as the DAG would."""
    work = tmp_path_factory.mktemp("quality")
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_quality")
    pos_dsn = fresh_database(test_warehouse.dsn, "trebol_test_quality_pos")
    settings = test_warehouse.settings
    sources = list(load_sources().values())
    rules = load_rules()
    try:
        simulate(SimulationSpec(customers=3000, days=24, end_date=END, seed=23), work / "sources",
                 pos_dsn)
        orders = work / "sources" / "ecom" / "orders"
        sizes = {
            "negative": _rewrite_orders(orders / f"{NEGATIVE_DAY}.jsonl", _negative_amounts_no_email),
            "future": _rewrite_orders(orders / f"{FUTURE_DAY}.jsonl", _next_year),
            "thin": _rewrite_orders(orders / f"{THIN_DAY}.jsonl", _a_tenth),
        }
        # the suites judge shares and volumes only on days big enough to mean something
        assert min(sizes.values()) >= 2 * DBT_VARS["quality_min_rows_for_share"], sizes
        outcomes = {}
        with psycopg.connect(dsn, autocommit=True) as conn:
            ddl.bootstrap(conn)
            ddl.ensure_raw_tables(conn, sources)
            # the relations the raw suites read (views of the run's batches over raw, and the
            # table of the sources' days), built for each run after its load, as dbt_build does
            for name, day in (("clean", NEGATIVE_DAY), ("negative", FUTURE_DAY),
                              ("future", THIN_DAY), ("thin", END),
                              ("missing", END + timedelta(days=1))):
                load_sources_until(conn, pos_dsn, work / "sources", day)
                run_dbt(dsn, local_midnight(day), "run", "--select", "path:models/quality/raw",
                        work_dir=work)
                run = _quality_run(dsn, day, settings, work / "reports")
                outcomes[name] = _check(run, conn, lambda c, r: gate.check_raw_batches(
                    c, r, sources, rules))
            # a run whose dbt_build never built them: they still show the day before's batches
            later = END + timedelta(days=2)
            load_sources_until(conn, pos_dsn, work / "sources", later)
            outcomes["not_built"] = _check(_quality_run(dsn, later, settings, work / "reports"),
                                           conn, lambda c, r: gate.check_raw_batches(
                                               c, r, sources, rules))
        yield outcomes
    finally:
        drop_database(test_warehouse.dsn, dsn)
        drop_database(test_warehouse.dsn, pos_dsn)


def test_a_clean_run_passes_every_raw_suite(raw_outcomes: dict[str, Outcome]) -> None:
    clean = raw_outcomes["clean"]
    assert clean.error is None, clean.error
    assert clean.failed == []
    # every source with a suite of its own had its batch validated, and every source its batches
    suites = {path.stem for path in (PROJECT_DIR / "expectations" / "gx" / "expectations").glob("raw_*.json")}
    assert clean.suites == suites
    assert {"raw_pos_tickets", "raw_ecom_orders", "raw_batches"} <= suites


def test_orders_without_email_are_a_warning_that_lets_the_run_go_on(
        raw_outcomes: dict[str, Outcome]) -> None:
    """The day whose orders all lost their email: the share of orders with one is judged (a
    warning naming the column and the share); its errors are the quarantine's alone."""
    negative = raw_outcomes["negative"]
    warnings = [f for f in negative.failed if f[3] == "warning"]
    assert [(s, e, c) for s, e, c, _, _ in warnings] == [
        ("raw_ecom_orders", "expect_column_values_to_not_be_null", "email")]
    unexpected, total = (int(n.replace(",", "")) for n in
                         re.match(r"([\d,]+) of ([\d,]+) rows unexpected", warnings[0][4]).groups())
    assert unexpected == total > 0


def _errors(outcome: Outcome) -> list[tuple]:
    return [f for f in outcome.failed if f[3] == "error"]


@pytest.mark.parametrize("case, column, share", [("negative", "quarantined_share", "0.3"),
                                                 ("future", "quarantined_share", "1.0"),
                                                 ("thin", "volume_ratio", "0.1")])
def test_each_faulty_batch_fails_its_suite_naming_the_source(raw_outcomes: dict[str, Outcome],
                                                             case: str, column: str,
                                                             share: str) -> None:
    outcome = raw_outcomes[case]
    [(suite, expectation, failed_column, _severity, observed)] = _errors(outcome)
    assert (suite, expectation, failed_column) == ("raw_batches", "expect_column_values_to_be_between",
                                                   column)
    assert "1 of" in observed and "source=ecom_orders" in observed, observed
    value = float(observed.split(f"{column}=")[1].split()[0].rstrip(";|"))
    assert abs(value - float(share)) < 0.06, observed
    # the task's error names the suite, the check, the source: what stops the push
    assert outcome.error and "activation stopped" in outcome.error
    assert f"raw_batches: expect_column_values_to_be_between({column})" in outcome.error
    assert "source=ecom_orders" in outcome.error


def test_a_run_without_the_days_exports_fails_naming_each_missing_source(
        raw_outcomes: dict[str, Outcome]) -> None:
    """The day after the simulated history has no export: every daily files or snapshot source
    owes one, which is an error naming the sources (a silent gap before)."""
    missing = raw_outcomes["missing"]
    [(suite, expectation, _column, _, observed)] = [
        f for f in _errors(missing) if f[2] == "missing_files_error"]
    assert (suite, expectation) == ("raw_batches", "expect_column_values_to_be_in_set")
    daily = sorted(s.name for s in load_sources().values()
                   if s.kind in ("files", "snapshot") and s.cadence == "daily")
    assert "mailchimp_opt_outs" not in daily  # cadence none: no Mailchimp, no file owed
    assert observed.startswith(f"{len(daily)} of "), observed
    named = re.findall(r"source=(\w+)", observed)
    assert len(named) == 3 and set(named) <= set(daily), observed
    assert missing.error and "missing_files_error" in missing.error


def test_relations_not_built_for_the_run_are_an_error_not_a_quiet_pass(
        raw_outcomes: dict[str, Outcome], test_warehouse: SessionWarehouse) -> None:
    """The raw suites read relations that hold the batches of the run dbt built them for: left
    from the day before (dbt_build did not build them), each is an error naming it and that
    run, and the push stops, rather than the day's batches passing unchecked."""
    outcome = raw_outcomes["not_built"]
    errors = _errors(outcome)
    suites = {suite for suite, *_ in errors}
    validations = gate.raw_validations(list(load_sources().values()),
                                       test_warehouse.settings.expectations_dir)
    assert suites == {v.suite for v in validations} and len(suites) > 5, suites
    day_before = local_midnight(END + timedelta(days=1)).isoformat()
    assert all(f[1] == "built_for_the_run" and f"built for the run as of {day_before}" in f[4]
               for f in errors), errors
    assert outcome.error and "activation stopped" in outcome.error
    assert "quality.loaded_ecom_orders was built for the run as of" in outcome.error


@pytest.fixture(scope="module")
def mart_world(demo_marts: DemoMarts, test_warehouse: SessionWarehouse,
               tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[psycopg.Connection, gate.QualityRun]]:
    """The demo marts with the CLV step's rows and the staged audiences of DEMO_DATE."""
    reports = tmp_path_factory.mktemp("quality-marts")
    with psycopg.connect(demo_marts.dsn, autocommit=True) as conn:
        predictions.run_clv(conn, DEMO_DATE, test_warehouse.settings)
        staging.stage_audiences(conn, load_activation(), DEMO_DATE)
        # the quality models the mart suites read, built on the predictions (as dbt_build_value)
        _build_quality_models(demo_marts.dsn, reports)
        yield conn, _quality_run(demo_marts.dsn, DEMO_DATE, test_warehouse.settings, reports)


def _build_quality_models(dsn: str, work: Path) -> None:
    run_dbt(dsn, local_midnight(DEMO_DATE), "run", "--select", "path:models/quality/marts",
            "path:models/quality/activation", work_dir=work)


def _expectations(suites: set[str]) -> int:
    folder = PROJECT_DIR / "expectations" / "gx" / "expectations"
    return sum(len(json.loads((folder / f"{suite}.json").read_text())["expectations"])
               for suite in suites)


def _check_marts(conn: psycopg.Connection, run: gate.QualityRun, run_id: str) -> Outcome:
    run = gate.QualityRun(**{**run.__dict__, "run_id": run_id})
    return _check(run, conn, lambda c, r: gate.check_marts(c, r, load_rules()))


def test_clean_marts_pass_and_are_recorded_with_data_docs(
        mart_world: tuple[psycopg.Connection, gate.QualityRun]) -> None:
    conn, run = mart_world
    outcome = _check_marts(conn, run, "test__marts_clean")
    assert outcome.error is None, outcome.error
    assert outcome.suites == {v.suite for v in gate.MART_VALIDATIONS}
    staged = conn.execute("select count(*) from activation.audience_members where as_of_date = %s",
                          (DEMO_DATE,)).fetchone()[0]
    assert staged > 0
    recorded = conn.execute("""
        select count(*), count(distinct suite), bool_and(severity in ('error', 'warning'))
        from marts.data_quality_results where run_id = 'test__marts_clean'""").fetchone()
    assert recorded == (_expectations(outcome.suites), len(gate.MART_VALIDATIONS), True)
    # the run's Data Docs open offline in a real browser and list this run's validations
    index = run.report_dir / "data_docs" / "index.html"
    dom = rendered_dom(index)
    for validation in gate.MART_VALIDATIONS:
        assert re.search(rf"<td[^>]*>[^<]*{validation.suite}</td>", dom), validation.suite
    picture = run.report_dir / "data_docs.png"
    screenshot(index, picture)
    assert picture.stat().st_size > 20_000


def test_customers_who_lost_their_email_fail_the_dim_customers_suite(
        mart_world: tuple[psycopg.Connection, gate.QualityRun]) -> None:
    """Keys and not-null columns are dbt's; what dbt cannot judge is how many customers are
    reachable: a third without email (as when identity or normalisation breaks) is an error."""
    conn, run = mart_world
    conn.execute("create table public.kept_emails as select customer_key, email from marts.dim_customers")
    conn.execute("""update marts.dim_customers set email = null
        where customer_key in (select customer_key from marts.dim_customers order by customer_key
                               limit (select count(*) / 3 from marts.dim_customers))""")
    try:
        outcome = _check_marts(conn, run, "test__marts_no_email")
    finally:
        conn.execute("""update marts.dim_customers as customers set email = kept.email
            from public.kept_emails as kept where kept.customer_key = customers.customer_key""")
        conn.execute("drop table public.kept_emails")
    errors = _errors(outcome)
    assert [(s, e, c) for s, e, c, _, _ in errors] == [
        ("marts_dim_customers", "expect_column_values_to_not_be_null", "email")]
    assert outcome.error and "marts_dim_customers" in outcome.error


def test_clv_predictions_that_jump_or_tell_no_one_apart_fail_the_value_drift_suite(
        mart_world: tuple[psycopg.Connection, gate.QualityRun], tmp_path: Path) -> None:
    """Against predictions of the day before worth three times as much, the median and the 90th
    percentile of the predicted CLV fall to a third (errors); with every repeat customer's
    p_alive the same, its spread is 0 (an error)."""
    conn, run = mart_world
    previous = DEMO_DATE - timedelta(days=1)
    conn.execute("""insert into marts.customer_clv
        select customer_key, %s, frequency, recency_days, age_days, mean_repeat_spend, margin_rate,
            p_alive, expected_purchases_90d, expected_purchases_365d, expected_avg_spend,
            predicted_clv * 3, churn_risk, churn_risk_band
        from marts.customer_clv where as_of_date = %s""", (previous, DEMO_DATE))
    conn.execute("create table public.kept_p_alive as select customer_key, p_alive "
                 "from marts.customer_clv where as_of_date = %s", (DEMO_DATE,))
    conn.execute("update marts.customer_clv set p_alive = 0.8 where as_of_date = %s", (DEMO_DATE,))
    try:
        _build_quality_models(run.dsn, tmp_path)
        drift = conn.execute("""select previous_clv_as_of_date, predicted_clv_p50_ratio,
            repeat_p_alive_spread from quality.value_distribution_drift""").fetchone()
        outcome = _check_marts(conn, run, "test__marts_value_drift")
    finally:
        conn.execute("delete from marts.customer_clv where as_of_date = %s", (previous,))
        conn.execute("""update marts.customer_clv as clv set p_alive = kept.p_alive
            from public.kept_p_alive as kept
            where clv.as_of_date = %s and kept.customer_key = clv.customer_key""", (DEMO_DATE,))
        conn.execute("drop table public.kept_p_alive")
        _build_quality_models(run.dsn, tmp_path)
    assert drift[0] == previous and abs(float(drift[1]) - 1 / 3) < 0.01 and drift[2] == 0
    errors = _errors(outcome)
    assert sorted((s, c) for s, _, c, _, _ in errors) == [
        ("marts_value_drift", "predicted_clv_p50_ratio"), ("marts_value_drift", "predicted_clv_p90_ratio"),
        ("marts_value_drift", "repeat_p_alive_spread")]
    assert all(f"as_of_date={DEMO_DATE.isoformat()}" in observed for *_, observed in errors), errors


def test_an_audience_member_without_consent_fails_the_audience_suite(
        mart_world: tuple[psycopg.Connection, gate.QualityRun]) -> None:
    conn, run = mart_world
    key, email = conn.execute("""select customer_key, email from marts.dim_customers
        where not has_marketing_consent and email is not null order by customer_key limit 1""").fetchone()
    conn.execute("insert into activation.audience_members values (%s, 'aud_winback', %s, %s, "
                 "'{}', false)", (DEMO_DATE, key, email))
    try:
        outcome = _check_marts(conn, run, "test__marts_consent")
    finally:
        conn.execute("delete from activation.audience_members where customer_key = %s and "
                     "as_of_date = %s", (key, DEMO_DATE))
    errors = _errors(outcome)
    assert [(s, e, c) for s, e, c, _, _ in errors] == [
        ("activation_audiences", "expect_column_values_to_be_in_set", "has_marketing_consent")]
    assert f"customer_key={key}" in errors[0][4] and "audience=aud_winback" in errors[0][4]


def test_a_wrong_rules_file_names_the_key(tmp_path: Path) -> None:
    broken = tmp_path / "quality.yml"
    demo_rules = (DEMO_CONFIG_DIR / "quality.yml").read_text()
    broken.write_text(demo_rules.replace("min_ratio: 0.3", "min_ratio: -1"))
    with pytest.raises(QualityRulesError, match=r"quality.yml: raw.volume.min_ratio: -1 is not a number"):
        load_rules(broken)
    drift = "  value_drift:\n    min_ratio: "
    broken.write_text(demo_rules.replace(drift + "0.5", drift + "3"))
    with pytest.raises(QualityRulesError, match=r"quality\.yml: marts\.value_drift\.min_ratio must be below"):
        load_rules(broken)


def test_every_suite_file_is_run_by_a_stored_validation_definition() -> None:
    """The project is complete as committed: a run only reads it (nothing to create or save)."""
    project = PROJECT_DIR / "expectations" / "gx"
    validations = [*gate.raw_validations(list(load_sources().values()), project.parent),
                   *gate.MART_VALIDATIONS]
    suites = {path.stem for path in (project / "expectations").glob("*.json")}
    assert suites == {validation.suite for validation in validations}
    for validation in validations:
        stored = json.loads((project / "validation_definitions" /
                             f"validate_{validation.suite}.json").read_text())
        assert stored["suite"]["name"] == validation.suite
        assert stored["data"]["asset"]["name"] == f"{validation.schema}.{validation.table}"
