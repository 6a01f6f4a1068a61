"""Campaign feedback on a real warehouse: the known-lift scenario through the real loader and dbt.

The demo's marts as of DEMO_DATE; two audiences staged and pushed to a file destination that day
with half of each held out (the activation role, as the push task does). Then, per scenario
seed, the demo's world answers (``trebol.demo.campaign_response``): within the 14-day window
every member buys with a base chance and the treated members of one audience with that chance
raised by a known lift, the other audience's not at all; the campaign tool exports what it did
with the sends (``trebol.demo.campaign_tool``). The loader loads the shop's and the tool's files
for those days and dbt builds the campaign marts as of the window's end.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from trebol.activation import staging, sync
from trebol.activation.config import ActivationConfig, parse
from trebol.activation.endpoints import build_destination
from trebol.demo import campaign_response, campaign_tool
from trebol.extract import load
from trebol.extract.sources import load_sources
from trebol.report import report_path
from trebol.report.page import write_report
from trebol.summary import build_summary, render
from trebol.warehouse import ddl
from trebol.warehouse.catalog import query_frame

from ..browser import render_page
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

pytestmark = [pytest.mark.integration]

TIMEZONE = "Europe/Madrid"
WINDOW_DAYS = 14
MEASURED_AT = DEMO_DATE + timedelta(days=WINDOW_DAYS)
EFFECT, NO_EFFECT = "aud_onboarding_new", "aud_upsell_high_potential"
LIFT = 0.5
SCENARIO = {EFFECT: campaign_response.Response(base_rate=0.1, lift=LIFT, discount_percent=10),
            NO_EFFECT: campaign_response.Response(base_rate=0.1, lift=0.0, discount_percent=10)}
# the scenario's seeds: four in the suite; CAMPAIGN_SCENARIO_SEEDS=N runs N (a coverage study)
SEEDS = tuple(range(11, 11 + int(os.environ.get("CAMPAIGN_SCENARIO_SEEDS", "4"))))
# more unsubscribes and hard bounces than a real tool sees, so that the next push has some to drop
RATES = campaign_tool.Rates(hard_bounce=0.05, unsubscribe=0.1)
ENGAGEMENT = {"Champions": 1.6, "Loyal": 1.3, "New": 1.2, "At risk": 0.7, "Hibernating": 0.5,
              "Lost": 0.4}


def activation_config() -> ActivationConfig:
    fields = {"email": "email", "first_name": "first_name", "offer": "offer_code"}
    return parse({
        "destinations": {"campaign_files": {"type": "file", "format": "csv"}},
        "syncs": [{"name": f"{audience}_files", "audience": audience, "destination": "campaign_files",
                   "holdout_share": 0.5, "fields": fields} for audience in SCENARIO],
    })


@dataclass(frozen=True)
class Pushed:
    """The warehouse the campaigns were pushed from, and where the deliveries went."""

    dsn: str
    drop_dir: Path


def _fill_audience(conn: psycopg.Connection, audience: str, half: int) -> None:
    """Replace the audience's rows with one half (by a hash of the key) of every customer with
    an email, consenting or not (staging keeps those who consent), as of the marts' date, with
    the audience's offer: the demo's audiences hold a few dozen customers who may be mailed, and
    overlap, too few for a lift to show against a holdout."""
    columns = [row[0] for row in conn.execute(
        """select a.column_name from information_schema.columns a
        join information_schema.columns p on p.column_name = a.column_name
            and p.table_schema = 'intermediate' and p.table_name = 'int_customers__audience_profile'
        where a.table_schema = 'audiences' and a.table_name = %s order by a.ordinal_position""",
        (audience,)).fetchall()]
    offer = conn.execute("""select offer_code, discount_percent, channel from reference.audience_offers
        where 'aud_' || audience = %s""", (audience,)).fetchone()
    listed = ", ".join(columns)
    conn.execute(f"delete from audiences.{audience}")
    conn.execute(
        f"""insert into audiences.{audience} ({listed}, offer_code, offer_discount_percent, offer_channel)
        select {listed}, %s, %s, %s from intermediate.int_customers__audience_profile
        where email is not null
            and (get_byte(decode(md5(customer_key), 'hex'), 0) %% 2) = %s""", (*offer, half))


def _push(conn: psycopg.Connection, day: date, drop_dir: Path) -> dict:
    """Both audiences filled from the marts' date, staged and pushed as of ``day`` (the
    activation role, as the push task does); the members staged and the removals."""
    config = activation_config()
    for half, audience in enumerate(SCENARIO):
        _fill_audience(conn, audience, half)
    conn.execute(f"set role {ddl.ACTIVATION}")
    staging.stage_audiences(conn, config, day)
    for spec in config.syncs:
        destination = build_destination(config.destinations[spec.destination], drop_dir)
        sync.run_sync(conn, config, spec.name, day, "campaign-test", destination)
    staged = conn.execute("select audience, customer_key from activation.audience_members "
                          "where as_of_date = %s", (day,)).fetchall()
    removed = conn.execute("""select runs.audience, records.customer_key, records.reason
        from activation.sync_records as records
        join activation.sync_runs as runs using (sync_run_id)
        where runs.as_of_date = %s and records.operation = 'remove'""", (day,)).fetchall()
    return {"staged": set(staged), "removed": {(a, k): reason for a, k, reason in removed}}


@pytest.fixture(scope="module")
def pushed(test_warehouse: SessionWarehouse, demo_marts: DemoMarts,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushed]:
    """The demo's marts as of DEMO_DATE with both audiences (two disjoint halves of the customers
    who may be mailed) staged and pushed that day."""
    dsn = copy_database(test_warehouse.dsn, demo_marts.dsn, "trebol_test_campaigns")
    drop_dir = tmp_path_factory.mktemp("campaign-drop")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            _push(conn, DEMO_DATE, drop_dir)
        yield Pushed(dsn, drop_dir)
    finally:
        drop_database(test_warehouse.dsn, dsn)


@dataclass(frozen=True)
class Measured:
    """One seed's campaign marts, read after the build as of the window's end."""

    performance: pd.DataFrame
    history: pd.DataFrame
    members: pd.DataFrame  # activation.audience_members of DEMO_DATE
    events: pd.DataFrame  # raw.campaign_events
    purchases: pd.DataFrame  # marts.fct_transactions' sales since DEMO_DATE
    segments: pd.DataFrame  # marts.segment_history of DEMO_DATE
    orders: list[dict]  # what the world bought
    orders_loaded: int
    shared_emails: set[str]  # addresses more than one customer holds
    summary: dict | None  # the run summary as of the window's end (report_dir given)
    next_push: dict | None  # the push as of the window's end: staged, removed (report_dir given)


def measure(test_warehouse: SessionWarehouse, pushed: Pushed, seed: int, work: Path,
            dbt_verb: str = "run", report_dir: Path | None = None) -> Measured:
    """The world's answer for ``seed``, loaded and built into a copy of the pushed warehouse;
    with ``report_dir``, the summary and run report of that date written there."""
    dsn = copy_database(test_warehouse.dsn, pushed.dsn, f"trebol_test_campaigns_{seed}")
    sources_dir = work / "sources"
    end = local_midnight(MEASURED_AT)
    interval = load.Interval(end - timedelta(days=1), end)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            segments = dict(conn.execute(
                "select customer_key, rfm_segment from marts.segment_history where as_of_date = %s",
                (DEMO_DATE,)).fetchall())
            members = campaign_response.campaign_members(conn, DEMO_DATE, SCENARIO)
            orders = campaign_response.purchases(members, SCENARIO, seed, WINDOW_DAYS, TIMEZONE)
            campaign_response.write_purchases(sources_dir, orders, MEASURED_AT, TIMEZONE)
            campaign_tool.export(
                sources_dir, [(delivery, RATES) for delivery in
                              campaign_tool.file_deliveries(pushed.drop_dir)],
                seed, TIMEZONE, MEASURED_AT,
                {key: ENGAGEMENT.get(segment, 1.0) for key, segment in segments.items()})
            loaded = {name: load.extract_and_load(conn, load_sources()[name], sources_dir, interval, 0,
                                                  TIMEZONE)
                      for name in ("ecom_orders", "campaign_events")}
        # with the summary and the next push: every mart they read; else only what the new
        # orders and events change (the send date's segments are in segment_history already)
        selection = (["+campaign_performance", *(f"+{audience}" for audience in SCENARIO)]
                     if report_dir is not None else ["+fct_transactions", "int_campaigns__campaigns+"])
        run_dbt(dsn, end, dbt_verb, "--select", *selection, work_dir=work)
        with psycopg.connect(dsn) as conn:
            summary = next_push = None
            if report_dir is not None:
                summary = build_summary(conn, MEASURED_AT, report_dir, "campaign-test")
                write_report(conn, summary, report_dir, interval, "campaign-test", [],
                             ["ecom_orders", "campaign_events"], [])
                next_push = _push(conn, MEASURED_AT, pushed.drop_dir)
            conn.execute("reset role")
            return Measured(
                query_frame(conn, "select * from marts.campaign_performance"),
                query_frame(conn, "select * from marts.customer_campaign_history"),
                query_frame(conn, "select * from activation.audience_members where as_of_date = %s",
                            (DEMO_DATE,)),
                query_frame(conn, "select * from raw.campaign_events"),
                query_frame(conn, """select customer_key, transaction_id, transacted_at, gross_amount,
                    discount_amount, net_amount, margin_amount from marts.fct_transactions
                    where not is_return and transacted_at >= %s""", (local_midnight(DEMO_DATE),)),
                query_frame(conn, "select * from marts.segment_history where as_of_date = %s",
                            (DEMO_DATE,)),
                orders,
                sum(result.rows_loaded for result in loaded["ecom_orders"]),
                {row[0] for row in conn.execute("""select email from marts.dim_customers
                    where email is not null group by email having count(*) > 1""").fetchall()},
                summary, next_push)
    finally:
        drop_database(test_warehouse.dsn, dsn)


@pytest.fixture(scope="module")
def measured(test_warehouse: SessionWarehouse, pushed: Pushed,
             tmp_path_factory: pytest.TempPathFactory) -> dict[int, Measured]:
    """Each seed's measure; the first also runs the marts' dbt tests (contracts, data tests)."""
    first = SEEDS[0]
    return {seed: measure(test_warehouse, pushed, seed, tmp_path_factory.mktemp(f"seed-{seed}"),
                          "build" if seed == first else "run",
                          tmp_path_factory.mktemp("report") if seed == first else None)
            for seed in SEEDS}


def overall(performance: pd.DataFrame, audience: str) -> pd.Series:
    [row] = performance[(performance.audience == audience)
                        & (performance.segment_type == "all")].to_dict("records")
    return pd.Series(row)


def test_the_arms_are_the_push_and_every_response_reaches_its_member(
        measured: dict[int, Measured]) -> None:
    """Every staged member is in the history once, in the arm staging drew; every order the
    world placed was loaded, and attributed to its member when no other customer holds the
    member's address (a household's shared address is the identity's to resolve: its order may
    go to the other customer)."""
    for result in measured.values():
        members = result.members.assign(arm=result.members.is_holdout.map({True: "holdout",
                                                                             False: "treated"}))
        history = result.history
        assert sorted(zip(history.audience, history.customer_key, history.arm, strict=True)) == sorted(
            zip(members.audience, members.customer_key, members.arm, strict=True))
        assert result.orders_loaded == len(result.orders) > 0
        unambiguous = {(order["account_id"].removeprefix("campaign-"), "ecom:" + order["order_id"])
                       for order in result.orders if order["email"] not in result.shared_emails}
        assert unambiguous <= set(zip(result.purchases.customer_key, result.purchases.transaction_id,
                                      strict=True))
        assert len(result.orders) >= int(history.purchases.sum()) >= len(unambiguous)
        assert (history.loc[history.arm == "holdout", "was_sent"] == False).all()  # noqa: E712
        assert history.loc[history.arm == "treated", "was_sent"].all()


def test_the_known_lift_is_recovered_and_the_no_effect_audience_shows_none(
        measured: dict[int, Measured]) -> None:
    """Over the seeds, the purchase-rate lift's 95% interval holds the simulated lift for the
    effect audience and zero for the other: no more misses among the 2 x seeds intervals than
    the 99% quantile of Binomial(2 x seeds, 0.05) (two of eight: none has probability 0.66, at
    most two 0.994); the effect audience's interval excludes zero for nine seeds in ten at
    least (every one of four: about 30 members an arm, a lift of 0.5 over a base of 0.1, power
    about 0.996 a seed); the mean estimate is within 0.15 of the truth (its standard error
    about 0.055 over four seeds). A study over 30 seeds (CAMPAIGN_SCENARIO_SEEDS=30): 58 of the
    60 intervals held the truth."""
    covered, estimates, excludes_zero = [], [], []
    for result in measured.values():
        effect, null = overall(result.performance, EFFECT), overall(result.performance, NO_EFFECT)
        covered += [effect.purchase_rate_lift_low <= LIFT <= effect.purchase_rate_lift_high,
                    null.purchase_rate_lift_low <= 0 <= null.purchase_rate_lift_high]
        estimates.append(effect.purchase_rate_lift)
        excludes_zero.append(effect.purchase_rate_lift_low > 0)
    print(f"coverage {sum(covered)}/{len(covered)}, estimates {estimates}")
    from scipy import stats

    assert len(covered) - sum(covered) <= stats.binom.ppf(0.99, len(covered), 0.05)
    assert sum(excludes_zero) >= math.ceil(0.9 * len(excludes_zero))
    assert abs(sum(estimates) / len(estimates) - LIFT) < 0.15


def test_unsubscribes_and_opens_come_back_from_the_tool(measured: dict[int, Measured]) -> None:
    """The tool's events land on the treated members of the right campaign: opens, clicks and
    unsubscribes per campaign equal the export's."""
    result = measured[SEEDS[0]]
    events = result.events.assign(audience=result.events.campaign_id.str.rsplit("/", n=1).str[0]
                                  .str.removesuffix("_files"))
    for kind, column in (("open", "opened"), ("click", "clicked"), ("unsubscribe", "unsubscribed")):
        expected = events[events.event_type == kind].groupby("audience").customer_key.nunique()
        got = result.history[result.history[column]].groupby("audience").customer_key.nunique()
        assert got.to_dict() == expected.to_dict(), kind


def recompute(result: Measured) -> pd.DataFrame:
    """campaign_performance from the raw events, the purchases, the staged arms and the
    segments, in pandas (the same definitions, written again)."""
    from scipy import stats  # the Welch t quantile, rounded down to the seed's table

    table = pd.read_csv(PROJECT_DIR / "dbt_project/seeds/reference/student_t_critical_values.csv")
    window_start = pd.Timestamp(local_midnight(DEMO_DATE))
    window_end = pd.Timestamp(local_midnight(DEMO_DATE + timedelta(days=WINDOW_DAYS)))
    members = result.members.assign(
        campaign_id=result.members.audience + "/" + DEMO_DATE.isoformat(),
        arm=result.members.is_holdout.map({True: "holdout", False: "treated"}))
    sales = result.purchases.groupby(["customer_key", "transaction_id"], as_index=False).agg(
        at=("transacted_at", "min"), net=("net_amount", "sum"), margin=("margin_amount", "sum"))
    sales = sales[(sales["at"] >= window_start) & (sales["at"] < window_end)]
    touched = members.merge(sales, on="customer_key")
    # last touch: one send date here, so the audience name decides (the later name wins)
    touched = touched.sort_values("audience").groupby(["customer_key", "transaction_id"]).tail(1)
    per_member = touched.groupby(["campaign_id", "customer_key"]).agg(
        purchases=("transaction_id", "count"), net=("net", "sum"), margin=("margin", "sum"))
    members = members.merge(per_member, on=["campaign_id", "customer_key"], how="left").fillna(
        {"purchases": 0, "net": 0, "margin": 0})
    events = result.events.assign(audience=result.events.campaign_id.str.rsplit("/", n=1).str[0]
                                  .str.removesuffix("_files"))
    opened = set(zip(events.audience[events.event_type == "open"],
                     events.customer_key[events.event_type == "open"], strict=True))
    members["opened"] = [(a, k) in opened for a, k in zip(members.audience, members.customer_key,
                                                          strict=True)]
    members = members.merge(result.segments[["customer_key", "rfm_segment"]], on="customer_key",
                            how="left").fillna({"rfm_segment": "unknown"})
    rows = []
    z = stats.norm.ppf(0.975)
    for (campaign, segment_type, segment), group in pd.concat([
            members.assign(segment_type="all", segment="all"),
            members.assign(segment_type="rfm_segment", segment=members.rfm_segment)]).groupby(
                ["campaign_id", "segment_type", "segment"]):
        arms = {arm: group[group.arm == arm] for arm in ("treated", "holdout")}
        n = {arm: len(frame) for arm, frame in arms.items()}
        buyers = {arm: int((frame.purchases > 0).sum()) for arm, frame in arms.items()}
        row = {"campaign_id": campaign, "segment_type": segment_type, "segment": segment,
               "treated_members": n["treated"], "holdout_members": n["holdout"],
               "treated_opened": int(arms["treated"].opened.sum()),
               "treated_buyers": buyers["treated"], "holdout_buyers": buyers["holdout"],
               "treated_revenue": round(float(arms["treated"].net.sum()), 2),
               "holdout_revenue": round(float(arms["holdout"].net.sum()), 2)}
        if n["treated"] and n["holdout"]:
            wilson = {}
            for arm in arms:
                p = buyers[arm] / n[arm]
                centre, half = p + z * z / (2 * n[arm]), z * math.sqrt(p * (1 - p) / n[arm]
                                                                       + z * z / (4 * n[arm] ** 2))
                scale = 1 + z * z / n[arm]
                wilson[arm] = (p, (centre - half) / scale, (centre + half) / scale)
            (pt, lt, ut), (ph, lh, uh) = wilson["treated"], wilson["holdout"]
            row["purchase_rate_lift"] = pt - ph
            row["purchase_rate_lift_low"] = pt - ph - math.sqrt((pt - lt) ** 2 + (uh - ph) ** 2)
            row["purchase_rate_lift_high"] = pt - ph + math.sqrt((ut - pt) ** 2 + (ph - lh) ** 2)
        if n["treated"] > 1 and n["holdout"] > 1:
            means = {arm: float(frame.net.mean()) for arm, frame in arms.items()}
            variances = {arm: float(frame.net.astype(float).var(ddof=1)) / n[arm]
                         for arm, frame in arms.items()}
            se = math.sqrt(sum(variances.values()))
            if se > 0:
                df = math.floor(1e-9 + se ** 4 / sum(v ** 2 / (n[arm] - 1) for arm, v in variances.items()))
                critical = float(table[table.degrees_of_freedom <= df].critical_value.iloc[-1])
                half = critical * se
            else:
                half = 0.0
            row["revenue_lift_per_member_low"] = means["treated"] - means["holdout"] - half
            row["revenue_lift_per_member_high"] = means["treated"] - means["holdout"] + half
        rows.append(row)
    return pd.DataFrame(rows)


def test_a_pandas_recomputation_of_campaign_performance_matches_it(
        measured: dict[int, Measured]) -> None:
    """From the staged arms, the raw events, the sales and the segments of the send date:
    counts and amounts equal, rates and intervals to 1e-9."""
    result = measured[SEEDS[0]]
    expected = recompute(result).set_index(["campaign_id", "segment_type", "segment"]).sort_index()
    got = result.performance[result.performance.segment_type.isin(["all", "rfm_segment"])].set_index(
        ["campaign_id", "segment_type", "segment"]).sort_index()
    assert list(got.index) == list(expected.index)
    for column in expected.columns:
        want, have = expected[column], got[column]
        if column.endswith(("_members", "_buyers", "_opened")):
            assert (have.astype(int) == want.astype(int)).all(), column
        elif column.endswith("_revenue"):
            assert (have.astype(float).round(2) == want.round(2)).all(), column
        else:
            both = pd.concat([have.astype(float), want.astype(float)], axis=1).dropna(how="all")
            assert both.notna().all().all(), column
            assert ((both.iloc[:, 0] - both.iloc[:, 1]).abs() < 1e-9).all(), column


def test_the_offer_costs_margin_the_no_effect_campaign_loses_money(measured: dict[int, Measured]) -> None:
    """The no-effect audience's treated members redeem a 10% discount and buy no more: its
    incremental margin, net of the contact cost, is below what the lift alone would give, and
    its discount is what the treated arm's purchases show."""
    result = measured[SEEDS[0]]
    null = overall(result.performance, NO_EFFECT)
    treated = result.history[(result.history.audience == NO_EFFECT) & (result.history.arm == "treated")]
    assert float(null.treated_discount) == pytest.approx(float(treated.discount_amount.sum()))
    assert float(null.treated_discount) > 0
    assert float(null.contact_cost) == pytest.approx(0.002 * null.treated_sent, abs=0.005)
    assert null.incremental_margin == pytest.approx(
        null.margin_lift_per_member * null.treated_members - 0.002 * null.treated_sent, abs=1e-6)


def test_the_summary_and_the_run_report_show_the_lift_with_its_interval(
        measured: dict[int, Measured]) -> None:
    """The summary of the window's end lists both campaigns as campaign_performance has them
    (a line each: rates, lift and interval in points), and the run report draws their lift
    chart (rendered offline in a headless browser, no error) from the same numbers."""
    result = measured[SEEDS[0]]
    summary = result.summary
    by_id = {row["campaign_id"]: row for row in summary["campaigns"]}
    assert set(by_id) == {f"{audience}/{DEMO_DATE.isoformat()}" for audience in SCENARIO}
    lines = render(summary).splitlines()
    for audience in SCENARIO:
        row = overall(result.performance, audience)
        shown = by_id[row.campaign_id]
        for column in ("treated_members", "holdout_members", "purchase_rate_lift",
                       "purchase_rate_lift_low", "purchase_rate_lift_high", "incremental_margin"):
            assert shown[column] == pytest.approx(row[column]), column
        [line] = [line for line in lines if line.startswith(f"  campaign    {row.campaign_id} ")]
        assert (f"lift {row.purchase_rate_lift * 100:+.1f} pts [{row.purchase_rate_lift_low * 100:+.1f}, "
                f"{row.purchase_rate_lift_high * 100:+.1f}]") in line
    report = report_path(Path(summary["reports"]["folder"]))
    rendered = render_page(report, report.with_name("report.png"), ["#chart-campaigns svg"])
    assert rendered.errors == [] and rendered.counts["#chart-campaigns svg"] == 1
    html = report.read_text(encoding="utf-8")
    spec = json.loads(html.split('<script type="application/json" id="spec-campaigns">', 1)[1]
                      .split("</script>", 1)[0])
    points = {row["campaign"]: row for rows in spec["datasets"].values() for row in rows if "campaign" in row}
    for campaign_id, row in by_id.items():
        assert points[campaign_id]["lift"] == pytest.approx(row["purchase_rate_lift"] * 100)
        assert points[campaign_id]["low"] == pytest.approx(row["purchase_rate_lift_low"] * 100)


def test_unsubscribes_and_hard_bounces_leave_the_next_push(measured: dict[int, Measured]) -> None:
    """The export's unsubscribes and hard bounces (before the window's end) take the consent of
    those customers away, so the push as of the window's end stages none of them and removes
    each from the destination that had them, as consent withdrawn."""
    result = measured[SEEDS[0]]
    events = result.events
    opted_out = set(events.customer_key[events.event_type.isin(["unsubscribe", "hard_bounce"])])
    assert len(opted_out) >= 3  # the scenario's rates make some
    staged_before = {(row.audience, row.customer_key) for row in result.members.itertuples()
                     if not row.is_holdout}
    staged_after = result.next_push["staged"]
    assert not {key for _, key in staged_after} & opted_out
    for audience, key in staged_before:
        if key in opted_out:
            assert result.next_push["removed"].get((audience, key)) == "consent_withdrawn", key



def test_the_demos_world_answers_a_push_only_where_it_was_sent(
        pushed: Pushed, tmp_path: Path) -> None:
    """What ``trebol demo`` does between its two runs: the demo's customers buy only on top of
    their usual purchases (no base chance here), so only members who were sent a campaign place
    an answer order, at the offer's discount; the campaign tool's export sends every treated
    member of the file deliveries, and nobody held out."""
    with psycopg.connect(pushed.dsn) as conn:
        written = campaign_response.answer_campaigns(conn, tmp_path, pushed.drop_dir, DEMO_DATE,
                                                     MEASURED_AT, 3, TIMEZONE)
        arms = dict(((audience, key), holdout) for audience, key, holdout in conn.execute(
            "select audience, customer_key, is_holdout from activation.audience_members "
            "where as_of_date = %s", (DEMO_DATE,)).fetchall())
        offers = dict(conn.execute("select 'aud_' || audience, discount_percent "
                                   "from reference.audience_offers").fetchall())
    orders = [json.loads(line) for path in sorted((tmp_path / "ecom/orders").glob("*.jsonl"))
              for line in path.read_text(encoding="utf-8").splitlines()]
    assert written["order_files"] >= 1 and orders
    for order in orders:
        key = order["account_id"].removeprefix("campaign-")
        [(audience, holdout)] = [(a, h) for (a, k), h in arms.items() if k == key]
        assert not holdout
        for line in order["lines"]:
            expected = round(line["unit_price"] * line["quantity"] * float(offers[audience]) / 100, 2)
            assert line["discount"] == pytest.approx(expected)
    sends = [row for path in sorted((tmp_path / "campaigns/events").glob("*.csv"))
             for row in csv.DictReader(path.open(encoding="utf-8"))]
    sent = {row["customer_key"] for row in sends if row["event_type"] == "send"}
    assert written["event_files"] >= 1
    assert sent == {key for (_, key), holdout in arms.items() if not holdout}
