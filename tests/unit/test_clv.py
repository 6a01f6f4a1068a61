"""CLV models: the published CDNOW estimates, recovery of known parameters, predictions, guard rails."""

from __future__ import annotations

import importlib.resources
import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trebol import cli
from trebol.clv import fitting
from trebol.demo import people

CALIBRATION_END = date(1997, 9, 30)
HOLDOUT_END = date(1998, 6, 30)


def cdnow_transactions() -> pd.DataFrame:
    """The CDNOW sample as shipped in the lifetimes wheel: customer id (original), customer index
    1..2357, date yyyymmdd, number of CDs, dollar amount; one row per purchase."""
    path = importlib.resources.files("lifetimes") / "datasets" / "CDNOW_sample.txt"
    with importlib.resources.as_file(path) as file:
        frame = pd.read_csv(file, sep=r"\s+", header=None, dtype={"date": str},
                            names=["customer_id", "customer", "date", "cds", "amount"])
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return frame


def cdnow_summary() -> pd.DataFrame:
    return fitting.summarize_transactions(cdnow_transactions(), "customer", "date", "amount",
                                      CALIBRATION_END, unit_days=7)


def test_cdnow_matches_the_published_estimates() -> None:
    """Fader, Hardie & Lee (2005): BG/NBD r 0.243, alpha 4.414, a 0.793, b 2.426 (LL -9582.4);
    Fader & Hardie, Gamma-Gamma on the 946 repeat customers: p 6.25, q 3.74, v 15.44."""
    summary = cdnow_summary()
    assert len(summary) == 2357
    assert int((summary["frequency"] > 0).sum()) == 946
    bg = fitting.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    gg = fitting.fit_gamma_gamma(summary["frequency"], summary["monetary_value"])
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "p": 6.25, "q": 3.74, "v": 15.44}
    fitted = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": gg.p, "q": gg.q, "v": gg.v}
    for name, value in published.items():
        assert fitted[name] == pytest.approx(value, rel=0.01), name
    assert bg.log_likelihood == pytest.approx(-9582.4, abs=0.5)
    assert bg.n == 2357 and gg.n == 946 and gg.excluded_non_positive == 0


def test_cdnow_holdout_prediction_is_close() -> None:
    """39 weeks of holdout (to 1998-06-30): the sum of the conditional expectations is 1,653
    repeat purchase days against 1,882 observed (12% under), a sanity bound, not a published figure."""
    summary = fitting.summarize_transactions(cdnow_transactions(), "customer", "date", "amount",
                                         CALIBRATION_END, HOLDOUT_END, unit_days=7)
    bg = fitting.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    weeks = (HOLDOUT_END - CALIBRATION_END).days / 7
    predicted = bg.expected_purchases(weeks, summary["frequency"], summary["recency"], summary["T"])
    assert predicted.sum() == pytest.approx(summary["holdout_frequency"].sum(), rel=0.15)
    alive = bg.p_alive(summary["frequency"], summary["recency"], summary["T"])
    assert np.all((alive > 0) & (alive <= 1)) and np.all(alive[summary["frequency"] == 0] == 1)


def test_a_day_of_returns_only_is_no_purchase_and_a_mixed_day_is_one() -> None:
    rows = [("a", "2026-01-01", 10.0), ("a", "2026-01-02", -5.0), ("a", "2026-01-03", 20.0),
            ("a", "2026-01-03", -3.0), ("b", "2026-01-02", -4.0), ("b", "2026-01-04", 0.0)]
    frame = pd.DataFrame(rows, columns=["customer", "date", "amount"])
    summary = fitting.summarize_transactions(frame, "customer", "date", "amount", date(2026, 1, 10),
                                             unit_days=1.0)
    # a: purchases on the 1st and the 3rd (the 2nd only returned); b: a free item on the 4th
    assert summary["frequency"].to_dict() == {"a": 1, "b": 0}
    assert summary.loc["a", "recency"] == 2.0 and summary.loc["a", "monetary_value"] == 17.0
    assert summary.loc["b", "T"] == 6.0


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, p: float, q: float, v: float,
                   seed: int) -> pd.DataFrame:
    """Customers drawn from the exact BG/NBD and Gamma-Gamma generative processes (time in days):
    arrivals at rate lambda ~ Gamma(r, 1/alpha) over an age T ~ U(30, 365); after each repeat
    purchase the customer drops out with probability p ~ Beta(a, b), so K ~ Geometric(p) repeat
    purchases at most; x = min(N(T), K) and the x-th arrival among N uniform ones sits at
    T Beta(x, N - x + 1). Spend per occasion Gamma(p, nu), nu ~ Gamma(q, 1/v)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n)
    drop = rng.beta(a, b, n)
    T = rng.uniform(30, 365, n)
    arrivals = rng.poisson(lam * T)
    x = np.minimum(arrivals, rng.geometric(drop))
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), arrivals - x + 1), 0.0)
    nu = rng.gamma(q, 1 / v, n)
    spend = np.where(x > 0, rng.gamma(p * np.maximum(x, 1), 1 / nu) / np.maximum(x, 1), np.nan)
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T, "monetary_value": spend})


def bgnbd_log_likelihood(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> float:
    """The BG/NBD log-likelihood written out independently of trebol.clv (eq. 6 of the paper)."""
    from scipy.special import gammaln

    r, alpha, a, b = np.exp(log_params)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + t_x), -np.inf)
    return float(np.sum(a1 + a2 + np.logaddexp(a3, a4)))


def log_standard_errors(log_params: np.ndarray, *data: np.ndarray) -> np.ndarray:
    """Asymptotic standard errors of the log-parameters: the inverse observed information, by
    central differences of the independent log-likelihood."""
    k, h = len(log_params), 1e-4
    hessian = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            def at(di: float, dj: float, i: int = i, j: int = j) -> float:
                shifted = log_params.copy()
                shifted[i] += di
                shifted[j] += dj
                return bgnbd_log_likelihood(shifted, *data)
            hessian[i, j] = (at(h, h) - at(h, -h) - at(-h, h) + at(-h, -h)) / (4 * h * h)
    return np.sqrt(np.diag(np.linalg.inv(-hessian)))


def test_recovers_known_parameters_within_sampling_error() -> None:
    """The simulator's latent parameters (plugins/trebol/demo/people.py: rate per day
    Gamma(0.9, scale 0.045) so r 0.9, alpha 22.2; dropout Beta(1.1, 9.0); spend Gamma-Gamma
    p 6, q 3.5, v 18.75), recovered from 20,000 customers drawn from the exact BG/NBD process.

    Why not the simulator's own output: it adds 20% one-off buyers with dropout 1 and never a
    repeat purchase, so its dropout is a mixture, not Beta(1.1, 9.0), and the BG/NBD MLE does not
    target (a, b). Here the estimator itself is checked on the process it assumes.

    Tolerance: BG/NBD log-parameters within 4 asymptotic standard errors (inverse observed
    information, computed independently of trebol.clv), so a correct estimator fails with a
    chance well under 0.1% per parameter; and (looser, sample-size based) within 25% relative,
    which the ~4-12% standard errors at this size comfortably satisfy. Gamma-Gamma p, q, v within
    15%: with ~8,000 repeat customers their standard errors are about 3-5%."""
    truth = {"r": people.RATE_SHAPE, "alpha": 1 / people.RATE_SCALE, "a": people.DROPOUT_A,
             "b": people.DROPOUT_B}
    data = simulate_bgnbd(20_000, truth["r"], truth["alpha"], truth["a"], truth["b"],
                          people.SPEND_SHAPE, people.SPEND_Q, people.SPEND_GAMMA, seed=11)
    bg = fitting.fit_bgnbd(data["frequency"], data["recency"], data["T"])
    fitted = np.log([bg.r, bg.alpha, bg.a, bg.b])
    se = log_standard_errors(fitted, *(data[c].to_numpy(float) for c in ("frequency", "recency", "T")))
    for (name, value), estimate, error in zip(truth.items(), fitted, se, strict=True):
        assert abs(estimate - np.log(value)) < 4 * error, (name, np.exp(estimate), value, error)
        assert np.exp(estimate) == pytest.approx(value, rel=0.25), name
    gg = fitting.fit_gamma_gamma(data["frequency"], data["monetary_value"])
    assert gg.p == pytest.approx(people.SPEND_SHAPE, rel=0.15)
    assert gg.q == pytest.approx(people.SPEND_Q, rel=0.15)
    assert gg.v == pytest.approx(people.SPEND_GAMMA, rel=0.15)


def test_grouped_weights_give_the_same_fit() -> None:
    summary = cdnow_summary()
    plain = fitting.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    doubled = fitting.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"],
                            weights=np.full(len(summary), 2.0))
    assert doubled.r == pytest.approx(plain.r, rel=1e-5)
    assert doubled.log_likelihood == pytest.approx(2 * plain.log_likelihood, rel=1e-6)


def test_clv_is_discounted_margin() -> None:
    summary = cdnow_summary()
    x, t_x, T, m = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T", "monetary_value"))
    bg = fitting.fit_bgnbd(x, t_x, T)
    gg = fitting.fit_gamma_gamma(x, m)
    undiscounted = fitting.predicted_clv(bg, gg, x, t_x, T, m, 1.0, horizon_months=12,
                                     annual_discount_rate=0.0, unit_days=7)
    year = bg.expected_purchases(365.25 / 7, x, t_x, T) * gg.expected_average_spend(x, m)
    np.testing.assert_allclose(undiscounted, year, rtol=1e-9)
    discounted = fitting.predicted_clv(bg, gg, x, t_x, T, m, 0.3, horizon_months=12,
                                   annual_discount_rate=0.1, unit_days=7)
    assert np.all(np.isfinite(discounted))
    assert np.all(discounted < 0.3 * year) and np.all(discounted > 0.3 * year / 1.1)
    assert fitting.monthly_rate(0.1) == pytest.approx(1.1 ** (1 / 12) - 1)


def test_guard_rails_raise_a_clear_error() -> None:
    with pytest.raises(fitting.CLVFitError, match="at least 10 repeat customers, got 2"):
        fitting.fit_bgnbd([0, 1, 2, 0], [0, 1, 2, 0], [3, 3, 3, 3], min_repeat_customers=10)
    with pytest.raises(fitting.CLVFitError, match="2 left out with a mean repeat spend <= 0"):
        fitting.fit_gamma_gamma([1, 2, 0], [0.0, -5.0, np.nan], min_customers=1)
    with pytest.raises(fitting.CLVFitError, match="inconsistent"):
        fitting.fit_bgnbd([1], [5], [3])
    summary = cdnow_summary()
    spend = summary["monetary_value"].to_numpy(float).copy()
    spend[summary["frequency"].to_numpy() > 0][:5] = 0.0
    repeat = np.flatnonzero(summary["frequency"].to_numpy() > 0)
    spend[repeat[:5]] = 0.0
    gg = fitting.fit_gamma_gamma(summary["frequency"], spend)
    assert gg.excluded_non_positive == 5 and gg.n == 941
    # every repeat customer buys at the same time and spends the same: the spread is not identified
    with pytest.raises(fitting.CLVFitError):
        fitting.fit_gamma_gamma(np.ones(200), np.full(200, 10.0))


def write_cdnow_csv(path: Path) -> Path:
    frame = cdnow_transactions()
    frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d"))[["customer", "date", "amount"]].rename(
        columns={"customer": "cust", "date": "day", "amount": "dollars"}).to_csv(path, index=False)
    return path


def test_clv_fit_command_prints_the_fit_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = write_cdnow_csv(tmp_path / "cdnow.csv")
    code = cli.main(["clv", "fit", "--transactions", str(csv), "--customer-col", "cust",
                     "--date-col", "day", "--amount-col", "dollars",
                     "--calibration-end", "1997-09-30", "--holdout-end", "1998-06-30"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bgnbd"]["r"] == pytest.approx(0.243, rel=0.01)
    assert result["bgnbd"]["b"] == pytest.approx(2.426, rel=0.01)
    assert result["gamma_gamma"]["v"] == pytest.approx(15.44, rel=0.01)
    assert result["holdout"]["actual_repeat_purchases"] == 1882
    assert result["holdout"]["predicted_repeat_purchases"] == pytest.approx(1653, rel=0.01)


@pytest.mark.parametrize(("content", "args", "expected"), [
    ("cust,day,dollars\n1,1997-01-01,3\n", ["--amount-col", "amount"], "no column 'amount'"),
    ("cust,day,dollars\n1,1997-01-01,3\n1,yesterday,4\n", [], "'yesterday' on data row 2 is not a date"),
    ("cust,day,dollars\n1,1997-01-01,three\n", [], "'three' on data row 1 is not a number"),
])
def test_clv_fit_command_rejects_bad_input_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, args: list[str],
        expected: str) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    options = {"--transactions": str(csv), "--customer-col": "cust", "--date-col": "day",
               "--amount-col": "dollars", "--calibration-end": "1997-09-30"}
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    code = cli.main(["clv", "fit", *(item for pair in options.items() for item in pair)])
    error = capsys.readouterr().err
    assert code == 2
    assert expected in error and error.count("\n") == 1


def test_a_calibration_end_before_the_data_names_the_data_range(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = write_cdnow_csv(tmp_path / "cdnow.csv")
    code = cli.main(["clv", "fit", "--transactions", str(csv), "--customer-col", "cust",
                     "--date-col", "day", "--amount-col", "dollars", "--calibration-end", "1990-01-01"])
    error = capsys.readouterr().err
    assert code == 1
    assert error == ("trebol clv fit: no purchase on or before the calibration end 1990-01-01: the "
                     "purchases run from 1997-01-01 to 1998-06-30\n")


def test_one_repeat_customer_is_said_in_the_singular() -> None:
    with pytest.raises(fitting.CLVFitError, match=r"needs at least 1 repeat customer, got 0$"):
        fitting.fit_bgnbd([0, 0], [0, 0], [3, 3], min_repeat_customers=1)
