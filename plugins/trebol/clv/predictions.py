"""The nightly CLV step: sufficient statistics from the warehouse, BG/NBD and Gamma-Gamma fits,
``marts.customer_clv`` and ``marts.clv_model_runs`` as of the run's date.

Statistics per customer, from ``marts.fct_transactions`` lines on local days before the as-of
date (the same lines ``customer_rfmt`` counts): a purchase day is a day with a line that is not
a return; ``frequency`` = purchase days - 1, ``recency_days`` = last - first purchase day,
``age_days`` (T) = as-of date - first purchase day (time unit: days, so ``alpha`` is per day);
``mean_repeat_spend`` = mean net amount of the purchase days after the first (same-day returns
deducted); ``margin_rate`` = margin / net amount over all the customer's lines, clipped to
[-1, 1], or the population's rate when the customer's net amount is not positive.

Each run replaces its as-of date's rows of both tables in one transaction, after every guard
rail has passed and every prediction is finite: a failed fit leaves the previous predictions in
place and the task fails with :class:`trebol.clv.CLVFitError`'s message.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from trebol.clv import fitting
from trebol.settings import Settings
from trebol.warehouse.catalog import query_frame

log = logging.getLogger(__name__)

# One pass over the lines in the order of fct_transactions' index (customer key's bytes, then the
# day: an index-only scan, no sort of every line), giving each customer's statistics and the
# purchase days the backtest reads (days before the as-of date). Sums and means stay numeric
# until the end, as exact as before. Measured at 200,000 people (2.96 M lines): 5.3 s, where
# the statistics and the backtest's own query took 5.3 and 3.6 s.
STATISTICS_SQL = """
with days as (
    select customer_key collate "C" as customer_key, transacted_on as day,
           bool_or(not is_return) as is_purchase,
           sum(net_amount) as net_amount, sum(margin_amount) as margin_amount
    from marts.fct_transactions
    where customer_key is not null and transacted_on < %(as_of)s
    group by customer_key collate "C", transacted_on
),
days_with_first as (
    select *, min(day) filter (where is_purchase) over (partition by customer_key) as first_day
    from days
),
customers as (
    select customer_key, min(first_day) as first_day,
           max(day) filter (where is_purchase) as last_day,
           count(*) filter (where is_purchase) as purchase_days,
           sum(net_amount) as net_total, sum(margin_amount) as margin_total,
           avg(net_amount) filter (where is_purchase and day > first_day) as mean_repeat_spend,
           array_agg(cast(%(as_of)s as date) - day order by day) filter (where is_purchase)
               as purchase_days_before
    from days_with_first
    group by customer_key
)
select cast(customer_key as varchar) as customer_key, purchase_days - 1 as frequency,
       last_day - first_day as recency_days, cast(%(as_of)s as date) - first_day as age_days,
       cast(mean_repeat_spend as double precision) as mean_repeat_spend,
       cast(net_total as double precision) as net_total,
       cast(margin_total as double precision) as margin_total, purchase_days_before
from customers
where purchase_days > 0
order by 1
"""

CLV_COLUMNS = ("customer_key", "as_of_date", "frequency", "recency_days", "age_days",
               "mean_repeat_spend", "margin_rate", "p_alive", "expected_purchases_90d",
               "expected_purchases_365d", "expected_avg_spend", "predicted_clv", "churn_risk",
               "churn_risk_band")


@dataclass(frozen=True)
class CLVRun:
    """One as-of date's fits and predictions."""

    as_of_date: date
    bgnbd: fitting.BGNBDFit
    gamma_gamma: fitting.GammaGammaFit
    predictions: pd.DataFrame

    def summary(self) -> dict[str, Any]:
        return {"as_of_date": self.as_of_date.isoformat(), "customers": len(self.predictions),
                "bgnbd": self.bgnbd.as_dict(), "gamma_gamma": self.gamma_gamma.as_dict()}


def customer_statistics(conn: psycopg.Connection, as_of: date) -> pd.DataFrame:
    """Every customer with a purchase day before ``as_of``: (frequency, recency_days, age_days,
    mean_repeat_spend, margin_rate, purchase_days_before: each purchase day as days before
    ``as_of``, for the backtest)."""
    frame = query_frame(conn, STATISTICS_SQL, {"as_of": as_of})
    if frame.empty:
        raise fitting.CLVFitError(f"no customer has a purchase before {as_of}: nothing to fit")
    for name in ("frequency", "recency_days", "age_days"):
        frame[name] = frame[name].astype(int)
    for name in ("mean_repeat_spend", "net_total", "margin_total"):
        frame[name] = frame[name].astype(float)
    positive = frame["net_total"] > 0
    population = (frame.loc[positive, "margin_total"].sum() / frame.loc[positive, "net_total"].sum()
                  if positive.any() else 0.0)
    own = frame["margin_total"] / frame["net_total"].where(positive)
    frame["margin_rate"] = own.fillna(population).clip(-1.0, 1.0)
    return frame.drop(columns=["net_total", "margin_total"])


def fit_and_predict(stats: pd.DataFrame, as_of: date, settings: Settings) -> CLVRun:
    """Both fits (guard rails included) and the predictions; raises CLVFitError."""
    x = stats["frequency"].to_numpy(float)
    t_x = stats["recency_days"].to_numpy(float)
    T = stats["age_days"].to_numpy(float)
    m = stats["mean_repeat_spend"].to_numpy(float)
    margin = stats["margin_rate"].to_numpy(float)
    minimum = settings.clv_min_repeat_customers
    bg = fitting.fit_bgnbd(x, t_x, T, min_repeat_customers=minimum)
    gg = fitting.fit_gamma_gamma(x, m, min_customers=minimum)
    p_alive = bg.p_alive(x, t_x, T)
    spend = gg.expected_average_spend(x, m)
    value = fitting.predicted_clv(bg, gg, x, t_x, T, m, margin, horizon_months=settings.clv_horizon_months,
                              annual_discount_rate=settings.clv_discount_rate, unit_days=1.0)
    predictions = stats.assign(
        as_of_date=as_of, p_alive=p_alive,
        expected_purchases_90d=bg.expected_purchases(90.0, x, t_x, T),
        expected_purchases_365d=bg.expected_purchases(365.0, x, t_x, T),
        expected_avg_spend=spend.round(2), predicted_clv=value.round(2), churn_risk=1.0 - p_alive)
    numeric = predictions[["p_alive", "expected_purchases_90d", "expected_purchases_365d",
                           "expected_avg_spend", "predicted_clv", "churn_risk"]].to_numpy(float)
    if not np.all(np.isfinite(numeric)):
        bad = int((~np.isfinite(numeric)).any(axis=1).sum())
        raise fitting.CLVFitError(f"{bad} customers got a non-finite prediction: nothing written")
    medium, high = settings.clv_churn_bands
    predictions["churn_risk_band"] = np.select(
        [predictions["churn_risk"] >= high, predictions["churn_risk"] >= medium], ["high", "medium"],
        "low")
    predictions["margin_rate"] = predictions["margin_rate"].round(4)
    predictions["mean_repeat_spend"] = predictions["mean_repeat_spend"].round(2)
    return CLVRun(as_of, bg, gg, predictions[list(CLV_COLUMNS)])


def write_run(conn: psycopg.Connection, run: CLVRun, settings: Settings) -> None:
    """Replace the as-of date's rows of both tables in one transaction."""
    bg, gg = run.bgnbd, run.gamma_gamma
    # CSV written by pandas (a float as its shortest exact text, a missing value as an empty
    # field, which CSV reads as null): a row by row COPY from Python took 1.1 s of 1.9 s at
    # 200,000 people
    csv_text = run.predictions.to_csv(index=False, header=False)
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute("delete from marts.customer_clv where as_of_date = %s", (run.as_of_date,))
        cursor.execute("delete from marts.clv_model_runs where as_of_date = %s", (run.as_of_date,))
        with cursor.copy(f"copy marts.customer_clv ({', '.join(CLV_COLUMNS)}) "
                         "from stdin (format csv)") as copy:
            copy.write(csv_text)
        cursor.execute(
            """insert into marts.clv_model_runs values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
               %s, %s, %s, 'day', %s, %s, %s, %s, %s)""",
            (run.as_of_date, bg.n, bg.n_repeat, gg.n, gg.excluded_non_positive, bg.r, bg.alpha,
             bg.a, bg.b, bg.log_likelihood, gg.p, gg.q, gg.v, gg.log_likelihood,
             settings.clv_horizon_months, settings.clv_discount_rate, bg.fit_seconds,
             gg.fit_seconds, json.dumps(run.summary())))


def run_clv(conn: psycopg.Connection, as_of: date, settings: Settings,
            report_dir: Path | None = None) -> dict[str, Any]:
    """The nightly step: statistics, fits, tables (and plots when ``report_dir`` is given)."""
    stats = customer_statistics(conn, as_of)
    run = fit_and_predict(stats, as_of, settings)
    write_run(conn, run, settings)
    log.info("CLV as of %s: %s", as_of, json.dumps(run.summary()))
    result = run.summary()
    if report_dir is not None:
        from trebol.clv import backtest

        try:  # validation only: a backtest that cannot be fitted does not fail the run
            checked = backtest.backtest(backtest.purchase_days(stats, as_of), as_of)
            result["plots"] = [str(path) for path in backtest.write_plots(checked, report_dir)]
        except fitting.CLVFitError as error:
            log.warning("CLV validation plots skipped: %s", error)
    return result
