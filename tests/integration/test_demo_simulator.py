"""The source-system simulator: reproducible, faults exactly where faults.csv says, identities complete.

Runs small simulations against a throw-away POS database on the test session's PostgreSQL server
(the embedded one, or the one TREBOL_WAREHOUSE_DSN names).
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

from trebol import cli
from trebol.demo import SimulationResult, SimulationSpec, SimulatorRefused, campaign_tool, simulate
from trebol.demo.faults import KINDS

from ..helpers import SessionWarehouse, drop_database, fresh_database

pytestmark = pytest.mark.integration

TABLES = ("stores", "products", "tickets", "ticket_lines")
SPEC = SimulationSpec(customers=150, days=60, end_date=date(2026, 4, 15), seed=7, fault_rate=0.02,
                      correction_rate=0.05)  # crosses the spring DST change of 2026-03-29
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
HEADERS = {
    "loyalty/members": "card_number,first_name,last_name,email,phone,postal_code,enrolled_on,tier,updated_at",
    "loyalty/points": "entry_id,card_number,entry_type,points,reference_id,occurred_at",
    "crm/contacts": "contact_id,first_name,last_name,email,phone,postal_code,marketing_consent,"
                    "consent_updated_at,unsubscribed_at,updated_at",
    "crm/cases": "case_id,contact_id,opened_at,channel,reason,status,resolved_at,compensation_amount,"
                 "updated_at",
}
ORDER_KEYS = ["order_id", "version", "status", "account_id", "email", "ordered_at", "updated_at",
              "shipping_postal_code", "lines"]


@pytest.fixture(scope="session")
def pos_dsn(test_warehouse: SessionWarehouse) -> Iterator[str]:
    """A POS database of the simulator tests' own, on the session's server (embedded by default),
    dropped at the end of the session."""
    dsn = fresh_database(test_warehouse.dsn, "trebol_sim_test")
    yield dsn
    drop_database(test_warehouse.dsn, dsn)


@dataclass
class Run:
    """One simulation and what the POS database held right after it."""

    result: SimulationResult
    out: Path
    checksums: dict[str, tuple[int, str]]
    tickets: dict[str, tuple[Any, ...]]
    lines: list[tuple[Any, ...]]
    products: set[str]


def _run(spec: SimulationSpec, out: Path, dsn: str) -> Run:
    result = simulate(spec, out, dsn)
    with psycopg.connect(dsn) as conn:
        checksums = {t: conn.execute(sql.SQL(
            "select count(*), md5(coalesce(string_agg(x::text, '|' order by x::text), '')) from pos.{} x"
        ).format(sql.Identifier(t))).fetchone() for t in TABLES}
        tickets = {r[0]: r for r in conn.execute(
            "select ticket_id, sold_at, original_ticket_id, total_amount, loyalty_card_number, updated_at "
            "from pos.tickets")}
        lines = conn.execute("select ticket_id, line_number, product_id, quantity, net_amount, updated_at "
                             "from pos.ticket_lines").fetchall()
        products = {r[0] for r in conn.execute("select product_id from pos.products")}
    return Run(result, out, checksums, tickets, lines, products)


@pytest.fixture(scope="module")
def run(pos_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(SPEC, tmp_path_factory.mktemp("sim") / "sources", pos_dsn)


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _physical_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path} does not end with a newline"
    return data.split(b"\n")[:-1]


def _faults(out: Path) -> list[dict[str, str]]:
    with (out / "ground_truth" / "faults.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _faulty_lines(out: Path) -> dict[str, set[int]]:
    lines: dict[str, set[int]] = defaultdict(set)
    for f in _faults(out):
        if f["line"]:
            lines[f["location"]].add(int(f["line"]))
    return lines


def _whole_file_faults(out: Path) -> set[str]:
    return {f["location"] for f in _faults(out) if f["source"] != "pos" and not f["line"]}


def _clean_csv(out: Path, folder: str) -> dict[str, list[dict[str, str]]]:
    """Per file, the rows of the lines faults.csv does not list (files with a drifted header skipped)."""
    faulty, drifted = _faulty_lines(out), _whole_file_faults(out)
    rows: dict[str, list[dict[str, str]]] = {}
    for path in sorted((out / folder).glob("*.csv")):
        location = path.relative_to(out).as_posix()
        if location in drifted:
            continue
        lines = _physical_lines(path)
        header = lines[0].decode("utf-8").split(",")
        rows[location] = [dict(zip(header, next(csv.reader([raw.decode("utf-8")])), strict=True))
                          for number, raw in enumerate(lines[1:], 2) if number not in faulty[location]]
    return rows


def _clean_orders(out: Path) -> dict[str, list[dict[str, Any]]]:
    faulty = _faulty_lines(out)
    orders: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((out / "ecom" / "orders").glob("*.jsonl")):
        location = path.relative_to(out).as_posix()
        orders[location] = [json.loads(raw) for number, raw in enumerate(_physical_lines(path), 1)
                            if number not in faulty[location]]
    return orders


# --- reproducibility -------------------------------------------------------------------------------------

def test_same_seed_gives_identical_files_and_pos_tables(run: Run, pos_dsn: str, tmp_path: Path) -> None:
    again = _run(SPEC, tmp_path / "again", pos_dsn)
    assert again.result.reused is False
    assert again.result.counts == run.result.counts and again.result.faults == run.result.faults
    first, second = _files(run.out), _files(again.out)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []
    assert again.checksums == run.checksums


def test_different_seed_gives_different_data(run: Run, pos_dsn: str, tmp_path: Path) -> None:
    other = _run(replace(SPEC, seed=8), tmp_path / "other", pos_dsn)
    first, second = _files(run.out), _files(other.out)
    assert first["ground_truth/people.csv"] != second["ground_truth/people.csv"]
    changed = [name for name in first.keys() & second.keys() if first[name] != second[name]]
    assert len(changed) > len(first) // 2
    assert other.checksums["tickets"] != run.checksums["tickets"]
    assert other.checksums["ticket_lines"] != run.checksums["ticket_lines"]


def test_identical_request_is_reused_unless_the_pos_database_changed(pos_dsn: str, tmp_path: Path) -> None:
    spec = SimulationSpec(customers=40, days=20, end_date=date(2026, 6, 30), seed=3)
    out = tmp_path / "sources"
    (out / "campaigns").mkdir(parents=True)
    (out / "campaigns" / "keep.csv").write_text("not the simulator's\n")
    first = simulate(spec, out, pos_dsn)
    assert first.reused is False and first.counts["pos_tickets"] > 0
    second = simulate(spec, out, pos_dsn)
    assert second.reused is True and second.counts == first.counts and second.faults == first.faults
    simulate(replace(spec, seed=4), tmp_path / "x", pos_dsn)
    third = simulate(spec, out, pos_dsn)  # the POS schema now holds another spec: regenerate
    assert third.reused is False and third.counts == first.counts
    assert (out / "campaigns" / "keep.csv").read_text() == "not the simulator's\n"


def test_new_people_take_the_demo_tools_event_files_and_leave_the_others(
        pos_dsn: str, tmp_path: Path) -> None:
    """The events the demo's campaign tool exported name the people of the data they answered:
    generating other people deletes those files (the tool's list of them), never another file
    of the campaign tool's folder."""
    spec = SimulationSpec(customers=40, days=20, end_date=date(2026, 6, 30), seed=3)
    out = tmp_path / "sources"
    simulate(spec, out, pos_dsn)
    delivery = campaign_tool.Delivery("s/2026-06-20", "s", "aud_test", date(2026, 6, 20),
                                      (("C1", "a@example.com"),))
    written = campaign_tool.export(out, [(delivery, campaign_tool.Rates(open=1))], 3,
                                   "Europe/Madrid", date(2026, 6, 30))
    foreign = out / campaign_tool.EVENTS_FOLDER / "2026-06-21-from-the-real-tool.csv"
    foreign.write_text("event_id,campaign_id,customer_key,email,event_type,occurred_at\n")
    assert written and all(path.is_file() for path in written)
    simulate(spec, out, pos_dsn)  # the same people: reused, the events stay
    assert all(path.is_file() for path in written)
    simulate(replace(spec, seed=4), out, pos_dsn)
    assert not any(path.exists() for path in written)
    assert foreign.is_file()
    assert sorted(p.name for p in (out / campaign_tool.EVENTS_FOLDER).iterdir()) == [foreign.name]


def test_invalid_specs_are_refused() -> None:
    with pytest.raises(ValueError):
        SimulationSpec(customers=0, days=10, end_date=date(2026, 1, 1), seed=1)
    with pytest.raises(ValueError):
        SimulationSpec(customers=10, days=10, end_date=date(2026, 1, 1), seed=-1)


# --- formats -----------------------------------------------------------------------------------------------

def test_one_file_per_day_per_family_with_the_documented_headers(run: Run) -> None:
    days = [(SPEC.start_date + timedelta(days=d)).isoformat() for d in range(SPEC.days)]
    assert SPEC.start_date == date(2026, 2, 14) and days[-1] == "2026-04-14"
    assert sorted(p.stem for p in (run.out / "ecom" / "orders").iterdir()) == days
    drifted = _whole_file_faults(run.out)
    for folder, header in HEADERS.items():
        assert sorted(p.stem for p in (run.out / folder).iterdir()) == days
        for path in (run.out / folder).iterdir():
            if path.relative_to(run.out).as_posix() not in drifted:
                assert _physical_lines(path)[0].decode() == header


def test_timestamps_carry_the_local_offset_and_files_cover_their_day(run: Run) -> None:
    tz = ZoneInfo(SPEC.timezone)
    offsets = set()

    def check(stamp: str, day: str | None = None) -> None:
        assert STAMP.match(stamp), stamp
        moment = datetime.fromisoformat(stamp)
        assert moment.utcoffset() == moment.astimezone(tz).utcoffset(), stamp
        offsets.add(stamp[-6:])
        if day is not None:
            assert stamp[:10] == day, (stamp, day)

    for location, orders in _clean_orders(run.out).items():
        day = Path(location).stem
        for order in orders:
            assert list(order) == ORDER_KEYS
            check(order["updated_at"], day)
            check(order["ordered_at"])
            assert order["status"] in ("paid", "shipped", "cancelled", "returned")
            assert re.fullmatch(r"E\d+", order["order_id"]) and re.fullmatch(r"A\d+", order["account_id"])
            assert re.fullmatch(r"\d{5}", order["shipping_postal_code"])
            for line in order["lines"]:
                assert list(line) == ["line_number", "sku", "quantity", "unit_price", "discount"]
                assert line["unit_price"] > 0 and line["quantity"] > 0 and line["discount"] >= 0
    for folder, column in (("loyalty/members", "updated_at"), ("loyalty/points", "occurred_at"),
                           ("crm/cases", "updated_at")):
        for location, rows in _clean_csv(run.out, folder).items():
            for row in rows:
                check(row[column], Path(location).stem)
    last = sorted(_clean_csv(run.out, "crm/contacts").items())[-1][1]
    for row in last:
        check(row["updated_at"])
        assert row["marketing_consent"] in ("true", "false")
        assert row["updated_at"][:10] <= "2026-04-14"
    assert offsets == {"+01:00", "+02:00"}
    for ticket in run.tickets.values():
        assert ticket[5] < datetime(2026, 4, 15, tzinfo=tz)


def test_order_versions_move_forward(run: Run) -> None:
    versions: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for orders in _clean_orders(run.out).values():
        for order in orders:
            versions[order["order_id"]].append((order["version"], order["status"], order["updated_at"]))
    allowed = {("paid",), ("paid", "shipped"), ("paid", "cancelled"), ("paid", "shipped", "returned")}
    for history in versions.values():
        history.sort()
        assert [v for v, _, _ in history] == list(range(1, len(history) + 1))
        assert tuple(s for _, s, _ in history) in allowed
        stamps = [datetime.fromisoformat(u) for _, _, u in history]
        assert stamps == sorted(stamps)


# --- faults ------------------------------------------------------------------------------------------------

def _csv_fault_is_real(kind: str, raw: bytes, previous: bytes, header: list[str]) -> bool:
    if kind == "latin1_bytes":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return len(next(csv.reader([raw.decode("latin-1")]))) == len(header)
        return False
    text = raw.decode("utf-8")
    if kind == "duplicate":
        return raw == previous
    if kind == "malformed_line":
        return text.count('"') % 2 == 1 or len(next(csv.reader([text]))) != len(header)
    row = dict(zip(header, next(csv.reader([text])), strict=True))
    if kind == "missing_key":
        return row[header[0]] == ""
    if kind == "future_date":
        return any(v.startswith("2099-") for v in row.values())
    amount = row.get("points") or row.get("compensation_amount") or ""
    if kind == "absurd_amount":
        return float(amount) >= 99999
    if kind == "negative_amount":
        return float(amount) < 0 and row.get("entry_type", "earn") == "earn"
    return False


def _order_fault_is_real(kind: str, raw: bytes, previous: bytes) -> bool:
    if kind == "invalid_json":
        try:
            json.loads(raw)
        except ValueError:
            return True
        return False
    if kind == "duplicate":
        return raw == previous
    order = json.loads(raw)
    if kind == "missing_key":
        return "order_id" not in order
    if kind == "future_date":
        return order["updated_at"].startswith("2099-") and order["ordered_at"].startswith("2099-")
    prices = [line["unit_price"] for line in order["lines"]]
    if kind == "absurd_amount":
        return max(prices) >= 99999
    if kind == "negative_amount":
        return min(prices) < 0
    return False


def test_every_fault_kind_is_injected_and_recorded_where_it_is(run: Run) -> None:
    faults = _faults(run.out)
    assert len(faults) == run.result.faults
    assert set(Counter(f["kind"] for f in faults)) == set(KINDS)
    assert {f["source"] for f in faults} == {"pos", "ecom", "loyalty", "crm"}
    for fault in faults:
        kind, location = fault["kind"], fault["location"]
        if fault["source"] == "pos":
            continue
        path = run.out / location
        lines = _physical_lines(path)
        if kind in ("extra_column", "missing_column"):
            assert fault["line"] == "" and location.startswith("loyalty/points/")
            header = lines[0].decode().split(",")
            expected = len(HEADERS["loyalty/points"].split(","))
            assert len(header) == expected + (1 if kind == "extra_column" else -1)
            assert all(len(next(csv.reader([raw.decode()]))) == len(header) for raw in lines[1:])
            continue
        number = int(fault["line"])
        raw, previous = lines[number - 1], lines[number - 2]
        if location.endswith(".jsonl"):
            assert _order_fault_is_real(kind, raw, previous), (fault, raw)
        else:
            header = lines[0].decode().split(",")
            assert number >= 2 and _csv_fault_is_real(kind, raw, previous, header), (fault, raw)
        if kind not in ("missing_key", "latin1_bytes", "malformed_line", "invalid_json", "duplicate"):
            assert fault["key"] and fault["key"] in raw.decode(), fault


def test_pos_faults_are_where_recorded_and_nowhere_else(run: Run) -> None:
    recorded = {(f["location"], f["key"], f["kind"]) for f in _faults(run.out) if f["source"] == "pos"}
    assert {kind for _, _, kind in recorded} == {"absurd_amount", "negative_amount", "future_date",
                                                 "unknown_product"}
    found = set()
    future = datetime(2099, 1, 1, tzinfo=ZoneInfo("UTC"))
    for ticket_id, sold_at, original, total, _, _ in run.tickets.values():
        if sold_at >= future:
            found.add(("pos.tickets", ticket_id, "future_date"))
        if total >= 99999:
            found.add(("pos.tickets", ticket_id, "absurd_amount"))
        if total < 0 and original is None:
            found.add(("pos.tickets", ticket_id, "negative_amount"))
    for ticket_id, _, product_id, quantity, net, _ in run.lines:
        if product_id not in run.products:
            found.add(("pos.ticket_lines", ticket_id, "unknown_product"))
        if net >= 99999:
            found.add(("pos.ticket_lines", ticket_id, "absurd_amount"))
        if quantity < 0 and run.tickets[ticket_id][2] is None:
            found.add(("pos.ticket_lines", ticket_id, "negative_amount"))
        if quantity > 0 and run.tickets[ticket_id][2] is not None:
            pytest.fail(f"return {ticket_id} has a positive quantity")
    assert found == recorded


def test_lines_not_listed_as_faulty_are_clean(run: Run) -> None:
    for folder, header in HEADERS.items():
        for rows in _clean_csv(run.out, folder).values():  # parses every unlisted line as UTF-8, right width
            for row in rows:
                assert row[header.split(",")[0]] != ""
                assert not any(value.startswith("2099-") for value in row.values())
    for orders in _clean_orders(run.out).values():
        assert all(order["order_id"] for order in orders)


def test_no_faults_when_the_rate_is_zero(pos_dsn: str, tmp_path: Path) -> None:
    spec = SimulationSpec(customers=60, days=30, end_date=date(2026, 6, 30), seed=5, fault_rate=0.0)
    result = simulate(spec, tmp_path, pos_dsn)
    assert result.faults == 0 and _faults(tmp_path) == []


# --- ground truth ------------------------------------------------------------------------------------------

def test_identities_cover_every_card_account_and_contact_once(run: Run) -> None:
    with (run.out / "ground_truth" / "identities.csv").open(encoding="utf-8", newline="") as handle:
        identities = list(csv.DictReader(handle))
    pairs = Counter((i["source"], i["source_id"]) for i in identities)
    assert max(pairs.values()) == 1
    by_source: dict[str, set[str]] = defaultdict(set)
    for i in identities:
        by_source[i["source"]].add(i["source_id"])
    cards = {row["card_number"] for rows in _clean_csv(run.out, "loyalty/members").values() for row in rows}
    accounts = {o["account_id"] for orders in _clean_orders(run.out).values() for o in orders}
    last_snapshot = sorted(_clean_csv(run.out, "crm/contacts").items())[-1][1]
    contacts = {row["contact_id"] for row in last_snapshot}
    assert by_source["loyalty"] == cards
    assert by_source["ecom"] == accounts
    assert by_source["crm"] == contacts
    assert len(last_snapshot) == len(contacts)
    pos_cards = {t[4] for t in run.tickets.values() if t[4] is not None}
    assert pos_cards and pos_cards <= cards
    ledger_cards = {row["card_number"] for rows in _clean_csv(run.out, "loyalty/points").values()
                    for row in rows}
    assert ledger_cards <= cards
    people = {row["person_id"] for row in _people(run.out)}
    assert {i["person_id"] for i in identities} <= people


def _people(out: Path) -> list[dict[str, str]]:
    with (out / "ground_truth" / "people.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_people_show_heterogeneous_repeat_buying(run: Run) -> None:
    people = _people(run.out)
    assert len(people) == SPEC.customers
    repeats = [int(p["repeat_purchases"]) for p in people]
    assert repeats.count(0) >= 10 and max(repeats) >= 5
    rates = sorted(float(p["purchase_rate"]) for p in people)
    assert rates[-1] > 5 * rates[len(rates) // 2]
    assert any(p["is_heavy_returner"] == "true" for p in people)
    assert any(p["is_discount_hunter"] == "true" for p in people)
    assert any(p["shares_email_with"] for p in people) or SPEC.customers < 100
    # purchase counts agree with the sources: one sale ticket or one order per purchase
    fault_tickets = {f["key"] for f in _faults(run.out) if f["source"] == "pos"}
    sales = sum(1 for t in run.tickets.values() if t[2] is None and t[0] not in fault_tickets)
    orders = {o["order_id"] for orders in _clean_orders(run.out).values() for o in orders}
    assert sum(int(p["purchases"]) for p in people) == sales + len(orders)
    assert sum(int(p["store_purchases"]) for p in people) == sales


def test_a_larger_run_is_fast_and_keeps_the_documented_shares(pos_dsn: str, tmp_path: Path) -> None:
    spec = SimulationSpec(customers=1000, days=365, end_date=date(2026, 6, 30), seed=11)
    started = time.monotonic()
    result = simulate(spec, tmp_path, pos_dsn)
    assert time.monotonic() - started < 30
    people = _people(tmp_path)
    share = Counter(p["is_loyalty_member"] for p in people)["true"] / len(people)
    assert 0.45 < share < 0.65
    assert result.counts["pos_tickets"] > result.counts["loyalty_members"] > 0


# -- the simulator only ever replaces what it created --------------------------------------------

SMALL = replace(SPEC, customers=20, days=10)


@pytest.fixture
def foreign_pos(test_warehouse: SessionWarehouse) -> Iterator[str]:
    """A database standing for a company's real POS: a `pos` schema the simulator did not create."""
    dsn = fresh_database(test_warehouse.dsn, "trebol_sim_foreign_pos")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create schema pos")
        conn.execute("create table pos.tickets (ticket_id text primary key, total numeric)")
        conn.execute("insert into pos.tickets values ('T-1', 12.50), ('T-2', 3.00)")
    yield dsn
    drop_database(test_warehouse.dsn, dsn)


def _pos_state(dsn: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with psycopg.connect(dsn) as conn:
        tables = [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'pos' order by 1")]
        rows = conn.execute("select * from pos.tickets order by 1").fetchall()
    return tables, rows


def test_a_pos_schema_it_did_not_create_is_refused_and_left_alone(foreign_pos: str, tmp_path: Path) -> None:
    before = _pos_state(foreign_pos)
    with pytest.raises(SimulatorRefused) as refused:
        simulate(SMALL, tmp_path / "out", foreign_pos)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("schema pos in postgresql://")
    assert "was not created by the demo simulator" in message
    assert _pos_state(foreign_pos) == before
    assert before == (["tickets"], [("T-1", Decimal("12.50")), ("T-2", Decimal("3.00"))])
    assert not (tmp_path / "out").exists(), "nothing is written before the refusal"


def test_the_cli_refuses_a_foreign_pos_in_one_line(foreign_pos: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TREBOL_SOURCES_DIR", str(tmp_path / "sources"))
    monkeypatch.setenv("TREBOL_DEMO_CUSTOMERS", "20")
    monkeypatch.setenv("TREBOL_DEMO_DAYS", "10")
    assert cli.main(["simulate", "--out", str(tmp_path / "sim"), "--pos-dsn", foreign_pos]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("trebol: schema pos in ")
    assert _pos_state(foreign_pos)[1] == [("T-1", Decimal("12.50")), ("T-2", Decimal("3.00"))]


def test_a_pos_schema_it_created_is_replaced(pos_dsn: str, tmp_path: Path) -> None:
    simulate(SMALL, tmp_path / "a", pos_dsn)
    with psycopg.connect(pos_dsn) as conn:
        comment = conn.execute("select obj_description('pos'::regnamespace, 'pg_namespace')").fetchone()
    assert comment == ("created by the Trebol demo simulator; replaced by each simulation",)
    again = simulate(replace(SMALL, seed=8), tmp_path / "b", pos_dsn)
    assert not again.reused


def test_export_folders_it_did_not_write_are_refused_and_left_alone(pos_dsn: str, tmp_path: Path) -> None:
    company = tmp_path / "exports"
    (company / "crm" / "contacts").mkdir(parents=True)
    export = company / "crm" / "contacts" / "2026-04-01.csv"
    export.write_text("contact_id,email\nK1,ana@example.com\n")
    with pytest.raises(SimulatorRefused,
                       match=r"holds crm/ but no manifest.json: not the demo simulator's data"):
        simulate(SMALL, company, pos_dsn)
    assert export.read_text() == "contact_id,email\nK1,ana@example.com\n"
    assert sorted(p.name for p in company.iterdir()) == ["crm"]


def test_simulate_into_another_folder_leaves_the_pipelines_pos_alone(
        test_warehouse: SessionWarehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`trebol simulate --out DIR` writes DIR only: the POS database the pipeline reads (here a
    stand-in with a demo manifest of its own) keeps its data."""
    pipeline_pos = fresh_database(test_warehouse.dsn, "trebol_sim_pipeline_pos")
    try:
        simulate(SMALL, tmp_path / "pipeline", pipeline_pos)
        before = _pos_state(pipeline_pos)
        monkeypatch.setenv("TREBOL_POS_DSN", pipeline_pos)
        assert cli.main(["simulate", "--out", str(tmp_path / "elsewhere"), "--customers", "25",
                         "--days", "10", "--end", "2026-04-15"]) == 0
        assert _pos_state(pipeline_pos) == before
        assert (tmp_path / "elsewhere" / "manifest.json").exists()
        assert (tmp_path / "elsewhere" / "ground_truth" / "identities.csv").exists()
    finally:
        drop_database(test_warehouse.dsn, pipeline_pos)
