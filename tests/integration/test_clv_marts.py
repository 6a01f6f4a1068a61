"""The nightly CLV step against a real warehouse built by dbt from the session's demo sources:
the tables, idempotency (a re-run of a date gives the same rows), finiteness, and a failed guard
rail that leaves the previous predictions in place."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import psycopg
import pytest

from trebol.clv import backtest, fitting, predictions

from ..helpers import DEMO_DATE, DemoMarts, SessionWarehouse

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clv_warehouse(demo_marts: DemoMarts) -> Iterator[psycopg.Connection]:
    with psycopg.connect(demo_marts.dsn, autocommit=True) as conn:
        yield conn


def _rows(conn: psycopg.Connection, query: str, *params: object) -> list[tuple]:
    return conn.execute(query, params).fetchall()


def test_statistics_agree_with_customer_rfmt(clv_warehouse: psycopg.Connection,
                                             test_warehouse: SessionWarehouse) -> None:
    stats = predictions.customer_statistics(clv_warehouse, DEMO_DATE).set_index("customer_key")
    rfmt = dict(((key, (f, tenure)) for key, f, tenure in _rows(
        clv_warehouse, "select customer_key, frequency, tenure_days from marts.customer_rfmt")))
    assert set(stats.index) == set(rfmt)
    for key, (frequency, tenure) in rfmt.items():
        assert stats.loc[key, "frequency"] == frequency
        assert abs(stats.loc[key, "age_days"] - tenure) <= 1
    assert (stats["recency_days"] <= stats["age_days"]).all()
    # the backtest's purchase days, from the same pass: as many as the frequency says, the
    # first and the last where the age and the recency put them
    days = backtest.purchase_days(stats.reset_index(), DEMO_DATE).groupby("customer_key")["day"]
    assert (days.count() == stats["frequency"] + 1).all()
    assert ((pd.Timestamp(DEMO_DATE) - days.min()).dt.days == stats["age_days"]).all()
    assert ((days.max() - days.min()).dt.days == stats["recency_days"]).all()


def test_fit_clv_writes_finite_predictions_idempotently(clv_warehouse: psycopg.Connection,
                                                        test_warehouse: SessionWarehouse,
                                                        tmp_path) -> None:
    settings = dataclasses.replace(test_warehouse.settings, clv_min_repeat_customers=20)
    summary = predictions.run_clv(clv_warehouse, DEMO_DATE, settings, tmp_path)
    query = "select * from marts.customer_clv where as_of_date = %s order by customer_key"
    first = _rows(clv_warehouse, query, DEMO_DATE)
    assert len(first) == summary["customers"] > 0
    for name in ("clv_holdout_by_frequency.png", "clv_cumulative_repeat_purchases.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    for row in first:
        for value in row[5:13]:
            assert value is None or math.isfinite(float(value)), row
    predictions.run_clv(clv_warehouse, DEMO_DATE, settings, tmp_path)
    assert _rows(clv_warehouse, query, DEMO_DATE) == first
    runs = _rows(clv_warehouse, """select customers, repeat_customers, gamma_gamma_customers,
        excluded_non_positive_spend, bgnbd_r, bgnbd_log_likelihood, parameters
        from marts.clv_model_runs where as_of_date = %s""", DEMO_DATE)
    assert len(runs) == 1
    customers, repeat, gg_customers, excluded, r, ll, parameters = runs[0]
    assert customers == len(first) and repeat == gg_customers + excluded and r > 0 and ll < 0
    assert parameters["bgnbd"]["r"] == pytest.approx(r)
    bands = {row[13] for row in first}
    assert bands <= {"low", "medium", "high"}
    for row in first:
        assert row[12] == pytest.approx(1 - row[7])
    assert any(float(row[11]) > 0 for row in first)


def test_failed_guard_rail_keeps_the_previous_predictions(clv_warehouse: psycopg.Connection,
                                                          test_warehouse: SessionWarehouse) -> None:
    settings = dataclasses.replace(test_warehouse.settings, clv_min_repeat_customers=20)
    predictions.run_clv(clv_warehouse, DEMO_DATE, settings)
    query = "select * from marts.customer_clv where as_of_date = %s order by customer_key"
    before = _rows(clv_warehouse, query, DEMO_DATE)
    strict = dataclasses.replace(settings, clv_min_repeat_customers=10**6)
    with pytest.raises(fitting.CLVFitError, match="at least 1000000 repeat customers"):
        predictions.run_clv(clv_warehouse, DEMO_DATE, strict)
    assert _rows(clv_warehouse, query, DEMO_DATE) == before
    earlier = DEMO_DATE - timedelta(days=30)
    predictions.run_clv(clv_warehouse, earlier, settings)
    assert _rows(clv_warehouse, query, DEMO_DATE) == before
    dates = [row[0] for row in _rows(clv_warehouse, "select as_of_date from marts.clv_model_runs "
                                                    "order by 1")]
    assert dates == [earlier, DEMO_DATE]


def test_value_marts_fall_back_without_predictions(demo_marts: DemoMarts) -> None:
    """The session's demo marts were built by dbt alone, before any fit: customer_clv exists
    (empty), customer_value's high potential is the run-rate heuristic and the service queue's
    churn risk the lifecycle rule."""
    with psycopg.connect(demo_marts.dsn, autocommit=True) as conn:
        value = _rows(conn, """select value_tier_basis, count(*), count(predicted_clv),
            count(*) filter (where value_tier = 'high_potential') from marts.customer_value
            group by 1""")
        queue = _rows(conn, """select distinct churn_risk_basis, churn_risk
            from marts.service_recovery_queue""")
    [(basis, customers, predicted, high_potential)] = value
    assert basis == "run_rate_heuristic" and customers > 100 and predicted == 0
    assert high_potential > 0
    assert set(queue) <= {("lifecycle_stage", None)}
