"""promotion_effects with real dbt on a real PostgreSQL, against a recomputation in pandas from
what it is built of (marts.fct_transactions, marts.segment_history): the promotion users and
non-users per channel and stratum, their means, the differences and their Welch intervals, and
the overall rows weighted by the strata's users.

Two builds: the demo marts as the session built them (the project's window, no snapshot before
the period: one stratum, unknown), and a copy of them with a month-start snapshot built as of an
earlier date over the same raw data, then the mart rebuilt as of the demo date with a shorter
window, whose period starts after that snapshot (real strata, most of them sparse). The demo's
discount hunters (ground truth) are the promotion users they should be.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import psycopg
import pytest
import yaml

from trebol.demo import SimulationResult
from trebol.warehouse.catalog import query_frame

from ..helpers import (
    DEMO_DATE,
    PROJECT_DIR,
    DemoMarts,
    SessionWarehouse,
    copy_database,
    drop_database,
    local_midnight,
    run_dbt,
)

pytestmark = pytest.mark.integration

VARS = yaml.safe_load((PROJECT_DIR / "dbt_project" / "dbt_project.yml").read_text())["vars"]
WINDOW_DAYS = VARS["promotion_effect_window_days"]
SHORT_WINDOW_DAYS = 45  # the period starts 2026-05-16, after the snapshot of HISTORY_DATE
HISTORY_DATE = date(2026, 5, 1)  # a month start: the newest snapshot on or before the period's start
T_TABLE = pd.read_csv(PROJECT_DIR / "dbt_project/seeds/reference/student_t_critical_values.csv")
MEASURES = ("ticket_size", "purchase_frequency", "margin_per_customer")
KEY = ["channel", "value_tier", "rfm_segment"]
EXACT = ("users", "non_users", "users_compared", "users_discount", "segments_as_of_date")


@dataclass(frozen=True)
class Built:
    """One build of the mart and what it was built of."""

    window_days: int
    effects: pd.DataFrame
    transactions: pd.DataFrame  # marts.fct_transactions
    segments: pd.DataFrame  # marts.segment_history


def _read(conn: psycopg.Connection, window_days: int) -> Built:
    return Built(
        window_days,
        query_frame(conn, "select * from marts.promotion_effects"),
        query_frame(conn, """select transaction_id, customer_key, channel, gross_amount,
            discount_amount, net_amount, margin_amount, is_return, transacted_at
            from marts.fct_transactions"""),
        query_frame(conn, """select as_of_date, customer_key, value_tier, rfm_segment
            from marts.segment_history"""))


@pytest.fixture(scope="module")
def builds(test_warehouse: SessionWarehouse, demo_marts: DemoMarts,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Built]]:
    """The session's build ("demo") and the short window over a kept snapshot ("strata"), in a
    copy of the demo marts (the session's are left as they were)."""
    with psycopg.connect(demo_marts.dsn) as conn:
        demo = _read(conn, WINDOW_DAYS)
    dsn = copy_database(test_warehouse.dsn, demo_marts.dsn, "trebol_test_promotions")
    work = tmp_path_factory.mktemp("promotions")
    short = ["--vars", json.dumps({"promotion_effect_window_days": SHORT_WINDOW_DAYS})]
    try:
        # the snapshot of HISTORY_DATE as a backfill builds it (its transactions, as of then);
        # then everything again as of the demo date, the mart with the short window, and its tests
        run_dbt(dsn, local_midnight(HISTORY_DATE), "run", "--select", "+segment_history",
                work_dir=work)
        run_dbt(dsn, local_midnight(DEMO_DATE), "run", "--select", "+promotion_effects", *short,
                work_dir=work)
        run_dbt(dsn, local_midnight(DEMO_DATE), "test", "--select", "promotion_effects", *short,
                work_dir=work)
        with psycopg.connect(dsn) as conn:
            strata = _read(conn, SHORT_WINDOW_DAYS)
        yield {"demo": demo, "strata": strata}
    finally:
        drop_database(test_warehouse.dsn, dsn)


def _welch(users_mean: float, non_users_mean: float, variance_sum: float | None,
           denominator: float | None) -> tuple[float, float | None, float | None]:
    """The difference and its 95% interval: t with Welch-Satterthwaite degrees of freedom,
    rounded down to the seed's table (as campaign_performance)."""
    difference = users_mean - non_users_mean
    if variance_sum is None:
        return difference, None, None
    if variance_sum == 0:
        return difference, difference, difference
    degrees = math.floor(1e-9 + variance_sum ** 2 / denominator)
    critical = float(T_TABLE[T_TABLE.degrees_of_freedom <= degrees].critical_value.iloc[-1])
    half = critical * math.sqrt(variance_sum)
    return difference, difference - half, difference + half


def recompute(built: Built) -> dict[tuple[str, str, str], dict]:
    """promotion_effects from the transactions and the segment history (the same definitions,
    written again), by channel, value tier and RFM segment."""
    start_on = DEMO_DATE - timedelta(days=built.window_days)
    start, end = pd.Timestamp(local_midnight(start_on)), pd.Timestamp(local_midnight(DEMO_DATE))
    lines = built.transactions
    lines = lines[~lines.is_return & lines.customer_key.notna()
                  & (lines.transacted_at >= start) & (lines.transacted_at < end)]
    lines = lines.assign(discounted=lines.discount_amount > 0)
    sales = lines.groupby(["transaction_id", "customer_key", "channel"], as_index=False).agg(
        gross=("gross_amount", "sum"), discount=("discount_amount", "sum"),
        net=("net_amount", "sum"), margin=("margin_amount", "sum"),
        discounted=("discounted", "any"))
    scoped = pd.concat([sales, sales.assign(channel="all")])
    customers = scoped.groupby(["channel", "customer_key"], as_index=False).agg(
        transactions=("transaction_id", "count"), gross=("gross", "sum"),
        discount=("discount", "sum"), net=("net", "sum"), margin=("margin", "sum"),
        user=("discounted", "any"))
    kept = built.segments[built.segments.as_of_date <= start_on]
    snapshot = kept.as_of_date.max() if len(kept) else None
    segments = kept[kept.as_of_date == snapshot][["customer_key", "value_tier", "rfm_segment"]]
    customers = customers.merge(segments, on="customer_key", how="left").fillna(
        {"value_tier": "unknown", "rfm_segment": "unknown"})
    customers["ticket_size"] = [float(net) / count for net, count
                                in zip(customers.net, customers.transactions, strict=True)]
    customers["purchase_frequency"] = customers.transactions.astype(float)
    customers["margin_per_customer"] = customers.margin.map(float)

    rows: dict[tuple[str, str, str], dict] = {}
    for channel, in_channel in customers.groupby("channel"):
        compared = []  # (users, users' means, non-users' means, variance terms, df terms)
        for (tier, segment), stratum in in_channel.groupby(["value_tier", "rfm_segment"]):
            users, non_users = stratum[stratum.user], stratum[~stratum.user]
            n1, n0 = len(users), len(non_users)
            row = {"users": n1, "non_users": n0, "users_compared": 0,
                   "users_discount": sum(users.discount, Decimal(0)),
                   "segments_as_of_date": snapshot}
            terms = {}
            for measure in MEASURES:
                mean1 = float(users[measure].mean()) if n1 else None
                mean0 = float(non_users[measure].mean()) if n0 else None
                row[f"users_{measure}"], row[f"non_users_{measure}"] = mean1, mean0
                variance_sum = denominator = None
                if n1 >= 2 and n0 >= 2:
                    a = float(users[measure].var(ddof=1)) / n1
                    b = float(non_users[measure].var(ddof=1)) / n0
                    variance_sum, denominator = a + b, a * a / (n1 - 1) + b * b / (n0 - 1)
                    terms[measure] = (mean1, mean0, variance_sum, denominator)
                difference = low = high = None
                if n1 and n0:
                    difference, low, high = _welch(mean1, mean0, variance_sum, denominator)
                row |= {f"{measure}_difference": difference, f"{measure}_difference_low": low,
                        f"{measure}_difference_high": high}
            if n1 >= 2 and n0 >= 2:
                row["users_compared"] = n1
                compared.append((n1, terms))
            rows[channel, tier, segment] = row
        users, non_users = in_channel[in_channel.user], in_channel[~in_channel.user]
        overall = {"users": len(users), "non_users": len(non_users),
                   "users_compared": sum(n for n, _ in compared),
                   "users_discount": sum(users.discount, Decimal(0)),
                   "segments_as_of_date": snapshot}
        total = overall["users_compared"]
        for measure in MEASURES:
            if not total:
                overall |= dict.fromkeys([f"users_{measure}", f"non_users_{measure}",
                                          f"{measure}_difference", f"{measure}_difference_low",
                                          f"{measure}_difference_high"])
                continue
            weights = [(n / total, terms[measure]) for n, terms in compared]
            mean1 = sum(w * t[0] for w, t in weights)
            mean0 = sum(w * t[1] for w, t in weights)
            difference, low, high = _welch(mean1, mean0, sum(w ** 2 * t[2] for w, t in weights),
                                           sum(w ** 4 * t[3] for w, t in weights))
            overall |= {f"users_{measure}": mean1, f"non_users_{measure}": mean0,
                        f"{measure}_difference": difference, f"{measure}_difference_low": low,
                        f"{measure}_difference_high": high}
        rows[channel, "all", "all"] = overall
    return rows


def _same(got: object, expected: object) -> bool:
    if expected is None or got is None or (isinstance(got, float) and math.isnan(got)):
        return (expected is None) and (got is None or (isinstance(got, float) and math.isnan(got)))
    return math.isclose(float(got), float(expected), rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("build", ["demo", "strata"])
def test_the_mart_matches_a_recomputation(builds: dict[str, Built], build: str) -> None:
    built = builds[build]
    expected = recompute(built)
    got = {tuple(row[column] for column in KEY): row for row in built.effects.to_dict("records")}
    assert set(got) == set(expected)
    start_on = DEMO_DATE - timedelta(days=built.window_days)
    for key, want in expected.items():
        row = got[key]
        assert row["period_start_at"] == local_midnight(start_on), key
        assert row["period_end_at"] == local_midnight(DEMO_DATE), key
        for column in EXACT:
            assert row[column] == want[column], (key, column)
        for column in set(want) - set(EXACT):
            assert _same(row[column], want[column]), (key, column, row[column], want[column])


def test_the_strata_are_the_segments_at_the_period_start(builds: dict[str, Built]) -> None:
    """The demo build has no snapshot before its period (every stratum unknown); the short
    window takes the month start before its period, not the demo date's, and most of its
    customers in known strata are compared only in some strata (few customers each)."""
    demo, strata = builds["demo"].effects, builds["strata"].effects
    assert set(demo.value_tier) == {"unknown", "all"} and demo.segments_as_of_date.isna().all()
    assert (strata.segments_as_of_date == HISTORY_DATE).all()
    known = strata[~strata.value_tier.isin(["unknown", "all"])]
    assert len(known) > 5 and known.users.sum() > 0 and known.non_users.sum() > 0
    overall = strata[(strata.value_tier == "all")].set_index("channel")
    assert (overall.users_compared <= overall.users).all()
    assert (overall.users_compared > 0).all()


def test_the_demo_promotion_users_are_its_discount_hunters(
        builds: dict[str, Built], demo_sources: SimulationResult, demo_marts: DemoMarts) -> None:
    """The simulator's discount hunters (a discount on 80% of their lines, others on 10%) who
    bought in the period are nearly all promotion users, and much more common among the users
    than among the non-users; users and non-users in both channels, and the channel all's users
    are those of either channel; the users buy more often than the non-users (in part the
    selection the model's caveat names: more purchases, more chances of a discount)."""
    effects = builds["demo"].effects
    overall = effects[effects.value_tier == "all"].set_index("channel")
    assert (overall.loc[["store", "online"], "users"] > 0).all()
    assert (overall.loc[["store", "online"], "non_users"] > 0).all()
    assert max(overall.users["store"], overall.users["online"]) <= overall.users["all"] \
        <= overall.users["store"] + overall.users["online"]
    assert (overall.users_discount_rate > 0).all()
    assert overall.purchase_frequency_difference["all"] > 0

    ground_truth = demo_sources.out_dir / "ground_truth"
    with (ground_truth / "people.csv").open(encoding="utf-8", newline="") as handle:
        hunters = {row["person_id"] for row in csv.DictReader(handle)
                   if row["is_discount_hunter"] == "true"}
    with (ground_truth / "identities.csv").open(encoding="utf-8", newline="") as handle:
        person_of = {(row["source"], row["source_id"]): row["person_id"]
                     for row in csv.DictReader(handle)}
    with psycopg.connect(demo_marts.dsn) as conn:
        keys = query_frame(conn, "select source, source_id, customer_key from marts.customer_source_keys")
    hunter_keys = {key for source, source_id, key in keys.itertuples(index=False)
                   if person_of.get((source, source_id)) in hunters}
    built = builds["demo"]
    start = pd.Timestamp(local_midnight(DEMO_DATE - timedelta(days=WINDOW_DAYS)))
    lines = built.transactions
    lines = lines[~lines.is_return & lines.customer_key.notna() & (lines.transacted_at >= start)]
    is_user = lines.groupby("customer_key").discount_amount.apply(lambda d: bool((d > 0).any()))
    hunters_buying = is_user[is_user.index.isin(hunter_keys)]
    others = is_user[~is_user.index.isin(hunter_keys)]
    print(f"hunters buying {len(hunters_buying)}, users among them {hunters_buying.sum()}; "
          f"others {len(others)}, users {others.sum()}")
    assert len(hunters_buying) >= 5
    assert hunters_buying.mean() >= 0.8
    assert hunters_buying.mean() > 2 * others.mean()
    assert is_user.sum() == overall.users["all"]
