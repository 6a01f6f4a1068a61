"""An independent check of marts.customer_rfmt: RFMT recomputed in pandas straight from the
simulator's output equals the mart exactly, customer by customer.

The recomputation reads what the simulator wrote (the POS tables in the POS database, the
e-commerce JSONL exports, ``ground_truth/faults.csv``) and never raw, staging or the marts, with one
exception: marts.customer_source_keys, the identity crosswalk (which loyalty card and which web
account belong to which customer), since identity resolution is tested on its own. It follows the
documented definitions (customer_rfmt.yml, the macros score_by_rank and days_between) and what the
loader accepts: faulty rows (every one in faults.csv) are quarantined, and a POS row is extracted
when its updated_at is before the interval end.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import yaml

from trebol.demo import SimulationSpec, simulate
from trebol.extract import load
from trebol.extract.sources import load_sources
from trebol.interval import Interval
from trebol.warehouse import ddl

from ..helpers import (
    DEMO_DATE,
    PROJECT_DIR,
    SessionWarehouse,
    drop_database,
    fresh_database,
    local_midnight,
    run_dbt,
    source_connector,
)

pytestmark = pytest.mark.integration
TZ = "Europe/Madrid"
SPEC = SimulationSpec(customers=2000, days=120, end_date=DEMO_DATE, seed=23, timezone=TZ)
AS_OF = local_midnight(DEMO_DATE, TZ)
AS_OF_EPOCH = int(AS_OF.timestamp())
DBT_PROJECT = PROJECT_DIR / "dbt_project"
MEASURES = ("recency_days", "frequency", "monetary_total", "monetary_average", "tenure_days",
            "r_score", "f_score", "m_score", "t_score", "fm_score", "rfmt_score", "rfm_segment")
LINE_COLUMNS = ["source", "source_id", "transacted_at", "is_return", "net_cents"]


@dataclass(frozen=True)
class Built:
    """The simulated sources, and what dbt built from them: the crosswalk and customer_rfmt."""

    sources_dir: Path
    pos_dsn: str
    crosswalk: pd.DataFrame
    mart: dict[str, tuple]


@pytest.fixture(scope="module")
def built(test_warehouse: SessionWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    work = tmp_path_factory.mktemp("rfmt")
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_rfmt")
    pos_dsn = fresh_database(test_warehouse.dsn, "trebol_test_rfmt_pos")
    try:
        simulate(SPEC, work / "sources", pos_dsn)
        interval = Interval(local_midnight(SPEC.start_date, TZ), AS_OF)
        with psycopg.connect(dsn, autocommit=True) as conn:
            ddl.bootstrap(conn)
            for source in load_sources().values():
                load.extract_and_load(conn, source, work / "sources", interval, 3, TZ,
                                      source_connector(pos_dsn))
            # cautious: leave out the tests that also need unselected models (dim_customers, …)
            run_dbt(dsn, AS_OF, "build", "--select", "+customer_rfmt", "--indirect-selection", "cautious",
                    work_dir=work)
            crosswalk = pd.DataFrame(
                conn.execute("select source, source_id, customer_key from marts.customer_source_keys"
                             ).fetchall(), columns=["source", "source_id", "customer_key"])
            mart = {row[0]: tuple(row[1:]) for row in conn.execute(
                f"select customer_key, {', '.join(MEASURES)} from marts.customer_rfmt")}
        yield Built(work / "sources", pos_dsn, crosswalk, mart)
    finally:
        drop_database(test_warehouse.dsn, dsn)
        drop_database(test_warehouse.dsn, pos_dsn)


# -- the sources, as the loader accepts them ------------------------------------------------------

def _cents(value: Decimal) -> int:
    cents = value * 100
    assert cents == cents.to_integral_value(), value
    return int(cents)


def _faults(sources_dir: Path) -> tuple[set[str], dict[str, set[int]]]:
    """The injected faults RFMT reads past: the faulty POS tickets, the faulty lines of each web export."""
    tickets: set[str] = set()
    lines: dict[str, set[int]] = {}
    with (sources_dir / "ground_truth" / "faults.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["source"] == "pos":
                tickets.add(row["key"])  # an extra ticket (and its line), wrong in its ticket or line
            elif row["source"] == "ecom":
                assert row["line"], row  # an extra physical line of an export
                lines.setdefault(row["location"], set()).add(int(row["line"]))
            # loyalty and CRM faults reach RFMT only through identity: the crosswalk has them
    return tickets, lines


def _pos_lines(pos_dsn: str, faulty_tickets: set[str]) -> pd.DataFrame:
    """Store lines, sales and returns (tickets with an original ticket), by loyalty card."""
    with psycopg.connect(pos_dsn) as conn:
        tickets = pd.DataFrame(conn.execute(
            "select ticket_id, loyalty_card_number, sold_at, original_ticket_id, updated_at "
            "from pos.tickets").fetchall(),
            columns=["ticket_id", "card", "sold_at", "original_ticket_id", "ticket_updated_at"])
        lines = pd.DataFrame(conn.execute(
            "select ticket_id, net_amount, updated_at from pos.ticket_lines").fetchall(),
            columns=["ticket_id", "net_amount", "line_updated_at"])
    # extracted: updated before the interval end; quarantined: the injected faults
    tickets = tickets[~tickets.ticket_id.isin(faulty_tickets)
                      & (tickets.ticket_updated_at < AS_OF) & (tickets.sold_at < AS_OF)]
    lines = lines[~lines.ticket_id.isin(faulty_tickets) & (lines.line_updated_at < AS_OF)]
    merged = lines.merge(tickets, on="ticket_id", how="inner", validate="many_to_one")
    return pd.DataFrame({
        "source": "loyalty",
        "source_id": merged.card.to_numpy(),
        "transacted_at": [int(t.timestamp()) for t in merged.sold_at],
        "is_return": merged.original_ticket_id.notna().to_numpy(),
        "net_cents": [_cents(v) for v in merged.net_amount],
    }, columns=LINE_COLUMNS)


def _latest_orders(sources_dir: Path, faulty_lines: dict[str, set[int]]) -> dict[str, dict]:
    """Each web order's latest version in the daily exports before the as-of date, faults left out."""
    latest: dict[str, dict] = {}
    for path in sorted((sources_dir / "ecom" / "orders").glob("*.jsonl")):
        if path.stem >= DEMO_DATE.isoformat():
            continue
        skip = faulty_lines.get(path.relative_to(sources_dir).as_posix(), set())
        for number, text in enumerate(path.read_bytes().split(b"\n"), 1):
            if number in skip or not text.strip():
                continue
            order = json.loads(text, parse_float=Decimal)
            current = latest.get(order["order_id"])
            if current is None or order["version"] > current["version"]:
                latest[order["order_id"]] = order
    return latest


def _ecom_lines(sources_dir: Path, faulty_lines: dict[str, set[int]]) -> pd.DataFrame:
    """Web lines: a sale at order time unless cancelled; a returned order also comes back whole,
    every line negated, at its return (the returned version's updated_at)."""
    statuses_csv = DBT_PROJECT / "seeds" / "internal" / "ecom_order_statuses.csv"
    with statuses_csv.open(newline="", encoding="utf-8") as handle:
        statuses = {row["order_status"]: row for row in csv.DictReader(handle)}
    rows = []
    for order in _latest_orders(sources_dir, faulty_lines).values():
        status = statuses[order["status"]]
        ordered_at = int(pd.Timestamp(order["ordered_at"]).timestamp())
        updated_at = int(pd.Timestamp(order["updated_at"]).timestamp())
        assert updated_at < AS_OF_EPOCH and ordered_at < AS_OF_EPOCH
        if status["is_cancelled"] == "true":
            continue
        for line in order["lines"]:
            net = line["quantity"] * _cents(line["unit_price"]) - _cents(line["discount"])
            rows.append(("ecom", order["account_id"], ordered_at, False, net))
            if status["is_returned"] == "true":
                rows.append(("ecom", order["account_id"], updated_at, True, -net))
    return pd.DataFrame(rows, columns=LINE_COLUMNS)


# -- RFMT, per the documented definitions ---------------------------------------------------------

def _score(values: pd.Series, ascending: bool = True) -> pd.Series:
    """score_by_rank: 1 + floor(5 (rank - 1) / n), rank as SQL rank() (ties take the first rank)."""
    rank = values.rank(method="min", ascending=ascending).astype("int64")
    return 1 + (5 * (rank - 1)) // len(values)


def _round_cents(cents: int, days: int) -> int:
    """cents / days to whole cents, half away from zero (a cast to numeric(14, 2))."""
    magnitude = (2 * abs(cents) + days) // (2 * days)
    return magnitude if cents >= 0 else -magnitude


def _recompute(lines: pd.DataFrame, crosswalk: pd.DataFrame) -> dict[str, tuple]:
    with (DBT_PROJECT / "dbt_project.yml").open(encoding="utf-8") as handle:
        configured = yaml.safe_load(handle)["vars"]["rfmt_weights"]
    weights = {name: Decimal(str(weight)) for name, weight in configured.items()}
    segments_csv = DBT_PROJECT / "seeds" / "reference" / "rfm_segments.csv"
    with segments_csv.open(newline="", encoding="utf-8") as handle:
        segment_map = sorted(csv.DictReader(handle), key=lambda row: int(row["priority"]))

    lines = lines.merge(crosswalk, on=["source", "source_id"], how="inner", validate="many_to_one")
    lines = lines[lines.transacted_at < AS_OF_EPOCH].copy()
    lines["day"] = (pd.to_datetime(lines.transacted_at, unit="s", utc=True).dt.tz_convert(TZ).dt.date)
    sales = lines[~lines.is_return]
    per = sales.groupby("customer_key").agg(first=("transacted_at", "min"), last=("transacted_at", "max"),
                                             days=("day", "nunique"))
    per["total"] = lines.groupby("customer_key").net_cents.sum()  # returns deducted
    per["recency_days"] = (AS_OF_EPOCH - per["last"]) // 86400
    per["frequency"] = per["days"] - 1
    per["tenure_days"] = (AS_OF_EPOCH - per["first"]) // 86400
    per["r_score"] = _score(per.recency_days, ascending=False)
    per["f_score"] = _score(per.frequency)
    per["m_score"] = _score(per.total)
    per["t_score"] = _score(per.tenure_days)

    expected = {}
    for key, row in per.iterrows():
        r, f, m, t = (int(row[c]) for c in ("r_score", "f_score", "m_score", "t_score"))
        fm = (Decimal(f + m) / 2).quantize(Decimal("0.1"), ROUND_HALF_UP)
        weighted = (weights["recency"] * r + weights["frequency"] * f + weights["monetary"] * m
                    + weights["tenure"] * t) / sum(weights.values())
        segment = next((s["rfm_segment"] for s in segment_map
                        if int(s["min_r_score"]) <= r <= int(s["max_r_score"])
                        and Decimal(s["min_fm_score"]) <= fm <= Decimal(s["max_fm_score"])), None)
        expected[key] = (
            int(row.recency_days), int(row.frequency), Decimal(int(row.total)).scaleb(-2),
            Decimal(_round_cents(int(row.total), int(row.days))).scaleb(-2), int(row.tenure_days),
            r, f, m, t, fm, weighted.quantize(Decimal("0.0001"), ROUND_HALF_UP), segment)
    return expected


def test_customer_rfmt_equals_an_independent_recomputation(built: Built) -> None:
    faulty_tickets, faulty_lines = _faults(built.sources_dir)
    lines = pd.concat([_pos_lines(built.pos_dsn, faulty_tickets),
                       _ecom_lines(built.sources_dir, faulty_lines)], ignore_index=True)
    expected = _recompute(lines, built.crosswalk)

    assert len(expected) > 1000
    assert set(built.mart) == set(expected), (
        f"only in the mart: {sorted(set(built.mart) - set(expected))[:10]}, "
        f"only recomputed: {sorted(set(expected) - set(built.mart))[:10]}")
    differences = [(key, column, built.mart[key][i], expected[key][i])
                   for key in sorted(expected) for i, column in enumerate(MEASURES)
                   if built.mart[key][i] != expected[key][i]]
    assert not differences, f"{len(differences)} differences (customer, column, mart, pandas): " \
        f"{differences[:20]}"
    print(f"customer_rfmt: {len(expected)} customers equal the pandas recomputation exactly")
