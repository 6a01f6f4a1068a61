"""Validation plots of the CLV model, as PNG in the run's report folder.

A backtest: the BG/NBD model is fitted as of ``as_of - holdout_days`` on the same purchase days
and compared with what happened until ``as_of``:

* ``clv_holdout_by_frequency.png``: mean repeat purchase days in the holdout, predicted
  (conditional expectation) and actual, by calibration frequency (0 .. 7+);
* ``clv_cumulative_repeat_purchases.png``: cumulative repeat purchase days of the customers
  acquired by the calibration end, actual and expected (sum over first-purchase cohorts of
  E[X(t - first purchase)]), with the calibration end marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from trebol.clv import fitting

HOLDOUT_DAYS = 30

@dataclass(frozen=True)
class Backtest:
    calibration_end: date
    fit: fitting.BGNBDFit
    by_frequency: pd.DataFrame  # frequency bucket -> customers, predicted, actual
    cumulative: pd.DataFrame  # day -> actual, expected


def purchase_days(stats: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Each customer's purchase days (customer_key, day) from the statistics' days before
    ``as_of`` (``trebol.clv.predictions.customer_statistics``)."""
    counts = stats["purchase_days_before"].map(len).to_numpy()
    before = np.concatenate(stats["purchase_days_before"].tolist()).astype("int64")
    return pd.DataFrame({"customer_key": np.repeat(stats["customer_key"].to_numpy(), counts),
                         "day": pd.Timestamp(as_of) - pd.to_timedelta(before, unit="D")})


def backtest(days: pd.DataFrame, as_of: date, holdout_days: int = HOLDOUT_DAYS,
             min_repeat_customers: int = 1) -> Backtest:
    """Fit as of ``as_of - holdout_days`` and compare with the holdout (raises CLVFitError)."""
    split = as_of - timedelta(days=holdout_days)
    summary = fitting.summarize_transactions(days.assign(amount=1.0), "customer_key", "day", "amount",
                                         split - timedelta(days=1), as_of - timedelta(days=1),
                                         unit_days=1.0)
    # calibration_end is the last day included; T counts to the split moment (as in the marts)
    summary["T"] += 1.0
    fit = fitting.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"],
                        min_repeat_customers=min_repeat_customers)
    predicted = fit.expected_purchases(float(holdout_days), summary["frequency"], summary["recency"],
                                       summary["T"])
    bucket = summary["frequency"].clip(upper=7)
    by_frequency = pd.DataFrame({"bucket": bucket, "predicted": predicted,
                                 "actual": summary["holdout_frequency"]}).groupby("bucket").agg(
        customers=("actual", "size"), predicted=("predicted", "mean"), actual=("actual", "mean"))
    start = summary["first_purchase"].min()
    horizon = (pd.Timestamp(as_of) - start).days
    grid = np.arange(horizon + 1, dtype=float)
    expected_new = np.concatenate([[0.0], fit.expected_purchases_new(grid[1:])])
    cohorts = (summary["first_purchase"] - start).dt.days.value_counts().sort_index()
    expected = np.zeros_like(grid)
    for offset, count in cohorts.items():
        expected[offset:] += count * expected_new[: horizon + 1 - offset]
    repeat = days.merge(summary["first_purchase"], left_on="customer_key", right_index=True)
    repeat = repeat[repeat["day"] > repeat["first_purchase"]]
    actual = np.zeros_like(grid)
    np.add.at(actual, (repeat["day"] - start).dt.days.to_numpy(), 1.0)
    cumulative = pd.DataFrame({"day": start + pd.to_timedelta(grid, unit="D"),
                               "actual": np.cumsum(actual), "expected": expected})
    return Backtest(split, fit, by_frequency, cumulative)


def write_plots(result: Backtest, out_dir: Path) -> list[Path]:
    """The two validation PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "clv_holdout_by_frequency.png", out_dir / "clv_cumulative_repeat_purchases.png"]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    table = result.by_frequency
    labels = [f"{int(b)}+" if b == 7 else str(int(b)) for b in table.index]
    positions = np.arange(len(table))
    axes.bar(positions - 0.2, table["actual"], 0.4, label="actual")
    axes.bar(positions + 0.2, table["predicted"], 0.4, label="BG/NBD")
    axes.set_xticks(positions, labels)
    axes.set_xlabel(f"repeat purchase days in calibration (to {result.calibration_end})")
    axes.set_ylabel("mean repeat purchase days in holdout")
    axes.set_title("Holdout: predicted vs actual by frequency")
    axes.legend()
    figure.tight_layout()
    figure.savefig(paths[0], dpi=100)
    plt.close(figure)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(result.cumulative["day"], result.cumulative["actual"], label="actual")
    axes.plot(result.cumulative["day"], result.cumulative["expected"], "--", label="BG/NBD")
    axes.axvline(pd.Timestamp(result.calibration_end), color="grey", linewidth=1)
    axes.set_ylabel("cumulative repeat purchase days")
    axes.set_title("Cumulative repeat purchases (calibration | holdout)")
    axes.legend()
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(paths[1], dpi=100)
    plt.close(figure)
    return paths
