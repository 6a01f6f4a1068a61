"""A snapshot's diff costs what the snapshot costs: its plans, whatever the history's length; and
a simulated CRM drop folder that keeps a window of snapshots loads as one whose history starts
with the oldest it keeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

from trebol.demo import SimulationSpec, simulate
from trebol.extract import checks, load, snapshots
from trebol.extract.readers import stage_csv
from trebol.extract.sources import Column, Source, load_sources
from trebol.interval import Interval
from trebol.warehouse import ddl

from ..helpers import SessionWarehouse

pytestmark = pytest.mark.integration
TZ = "Europe/Madrid"
SOURCE = Source(
    name="t_snap_plan", kind="snapshot", path="t_snap_plan/*.csv", target="t_snap_plan",
    primary_key=("id",), version_column=None, max_closed_share=1.0,
    columns=(Column("id", "text", "id", required=True),
             Column("amount", "numeric", "amount", required=True, minimum=Decimal(0),
                    maximum=Decimal(1000))))
OPEN_RECORDS, CLOSED_VERSIONS = 200, 40_000


def _interval(day: date) -> Interval:
    end = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(TZ))
    return Interval(end - timedelta(days=1), end)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _explain(conn: psycopg.Connection, statement: sql.Composable) -> list[dict[str, Any]]:
    """The nodes of the executed plan of ``statement`` (EXPLAIN ANALYZE: it runs)."""
    [[result]] = conn.execute(sql.SQL("explain (analyze, format json) {}").format(statement)).fetchall()
    return list(_nodes((result if isinstance(result, list) else json.loads(result))[0]["Plan"]))


def test_a_snapshots_diff_reads_the_open_records_only_and_never_loops(
        test_warehouse: SessionWarehouse, tmp_path: Path) -> None:
    """A history of 40,000 closed versions and 200 open records, never analyzed (a first load's
    history is not, before it commits): the day's snapshot (one record changed, one gone, one
    quarantined, one new) is diffed by reading the 200 open records through their index, joined
    to the snapshot by hashing or merging (no nested loop, whose cost is the product of the two
    sizes), and only the changed records are then written, each found by its key."""
    folder = tmp_path / SOURCE.name
    folder.mkdir()
    rows = [f"r{i:04d},{1 + (i == 7)}" for i in range(OPEN_RECORDS) if i != 9]
    rows[3] = "r0003,n/a"  # quarantined, its key readable: carried over as unreadable
    (folder / "2026-06-02.csv").write_text("\n".join(["id,amount", *rows, "new1,5"]) + "\n")
    day = date(2026, 6, 2)
    with test_warehouse.connect() as conn:
        conn.execute(f"drop table if exists raw.{SOURCE.target}")
        ddl.ensure_raw_tables(conn, [SOURCE], TZ)
        conn.execute(f"""insert into raw.{SOURCE.target} (id, amount, _batch_id, _valid_from, _valid_to)
            select 'r' || lpad((n % {OPEN_RECORDS})::text, 4, '0'), 1, 'old',
                   date '2020-01-01' + n / {OPEN_RECORDS}, date '2020-01-01' + n / {OPEN_RECORDS} + 1
            from generate_series(0, {CLOSED_VERSIONS - 1}) as n""")
        conn.execute(f"""insert into raw.{SOURCE.target} (id, amount, _batch_id, _valid_from)
            select 'r' || lpad(n::text, 4, '0'), 1, 'old', date '2026-06-01'
            from generate_series(0, {OPEN_RECORDS - 1}) as n""")
        with conn.transaction(force_rollback=True):
            staged = stage_csv(conn, SOURCE, folder / "2026-06-02.csv")
            checks.check(conn, SOURCE, _interval(day + timedelta(days=1)), staged, TZ)
            checks.rank_duplicates(conn, SOURCE)
            snapshots.stage_unreadable_keys(conn, SOURCE)
            diff_plan = _explain(conn, sql.SQL("create temp table _diff as {}").format(
                snapshots.diff_query(SOURCE)))
            actions = dict(conn.execute("select _action, count(*) from _diff group by 1").fetchall())
            conn.execute("analyze _diff")
            close_plan = _explain(conn, snapshots.close_statement(SOURCE, day))
    reads = [(n["Node Type"], n["Actual Rows"]) for n in diff_plan
             if n.get("Relation Name") == SOURCE.target]
    assert reads in ([("Index Scan", OPEN_RECORDS)], [("Bitmap Heap Scan", OPEN_RECORDS)]), \
        "only the open records are read"
    assert ddl.open_records_index(SOURCE) in {n.get("Index Name") for n in diff_plan}
    assert not [n for n in diff_plan if n["Node Type"] == "Nested Loop"], diff_plan
    assert {n["Node Type"] for n in diff_plan} & {"Hash Join", "Merge Join"}
    assert actions == {"replace": 1, "close": 1, "carry": 1, "open": 1}
    history_reads = [n for n in close_plan if n.get("Relation Name") == SOURCE.target
                     and n["Node Type"] != "ModifyTable"]
    assert [(n["Node Type"], n.get("Index Name")) for n in history_reads] == [
        ("Index Scan", f"{SOURCE.target}_pkey")], "each closed version is found by its key"
    assert sum(n["Actual Rows"] * n["Actual Loops"] for n in history_reads) == 3


def test_the_same_snapshots_give_the_same_history_as_the_row_by_row_rules(
        test_warehouse: SessionWarehouse, tmp_path: Path) -> None:
    """Every kind of change over four days, written out version by version: a change, a record
    gone then back, an unreadable row twice then readable again, a new record, an unchanged one."""
    source = replace(SOURCE, name="t_snap_kinds", path="t_snap_kinds/*.csv", target="t_snap_kinds")
    folder = tmp_path / source.name
    folder.mkdir()
    days = {"2026-06-01": ["a,1", "b,1", "c,1", "d,1"],
            "2026-06-02": ["a,2", "b,1", "c,n/a", "d,1"],
            "2026-06-03": ["a,2", "c,n/a", "d,1", "e,1"],
            "2026-06-04": ["a,2", "b,1", "c,1", "d,1", "e,1"]}
    for day, lines in days.items():
        (folder / f"{day}.csv").write_text("\n".join(["id,amount", *lines]) + "\n")
    with test_warehouse.connect() as conn:
        load.extract_and_load(conn, source, tmp_path, _interval(date(2026, 6, 5)), 0, TZ)
        history = conn.execute(f"select id, amount, _valid_from, _valid_to, _unreadable "
                               f"from raw.{source.target} order by id, _valid_from").fetchall()
    assert [(i, int(a), f.day, t and t.day, u) for i, a, f, t, u in history] == [
        ("a", 1, 1, 2, False), ("a", 2, 2, None, False),
        ("b", 1, 1, 3, False), ("b", 1, 4, None, False),
        ("c", 1, 1, 2, False), ("c", 1, 2, 4, True), ("c", 1, 4, None, False),
        ("d", 1, 1, None, False),
        ("e", 1, 3, None, False)]


def test_a_crm_drop_folder_keeping_a_window_loads_from_its_oldest_snapshot(
        test_warehouse: SessionWarehouse, tmp_path: Path) -> None:
    """The simulator with ``crm_snapshot_retention_days`` writes the newest days' contact
    snapshots (every other export whole; each kept file the very one of a full run), and
    the pipeline's first run builds the history from the oldest one kept: before it, no record
    is known (consent fails safe: nobody has one)."""
    end = date(2026, 6, 30)
    spec = SimulationSpec(customers=150, days=30, end_date=end, seed=5, crm_snapshot_retention_days=4)
    full = simulate(replace(spec, crm_snapshot_retention_days=None), tmp_path / "full", None)
    kept = simulate(spec, tmp_path / "kept", None)
    names = sorted(p.name for p in (tmp_path / "kept" / "crm" / "contacts").glob("*.csv"))
    assert names == [f"{end - timedelta(days=d)}.csv" for d in range(4, 0, -1)]
    assert len(list((tmp_path / "kept" / "crm" / "cases").glob("*.csv"))) == 30
    for name in names:
        assert (tmp_path / "kept" / "crm" / "contacts" / name).read_bytes() == \
            (tmp_path / "full" / "crm" / "contacts" / name).read_bytes(), "the very files, faults too"
    assert kept.counts["crm_contacts"] < full.counts["crm_contacts"]
    assert "crm_snapshot_retention_days" not in replace(spec, crm_snapshot_retention_days=None).to_json(), \
        "a spec without retention is recorded as before (the demo's outputs are reused)"
    # a source of its own (name and table): the session's demo crm_contacts is loaded elsewhere
    source = replace(load_sources()["crm_contacts"], name="t_crm_window", target="t_crm_window")
    with test_warehouse.connect() as conn:
        conn.execute("drop table if exists raw.t_crm_window")
        results = load.extract_and_load(conn, source, tmp_path / "kept", _interval(end), 0, TZ)
        first_day, open_records = conn.execute(
            "select min(_valid_from), count(*) filter (where _valid_to is null) from raw.t_crm_window"
        ).fetchone()
        known_before = conn.execute("select count(*) from raw.t_crm_window where _valid_from < %s",
                                    (first_day,)).fetchone()[0]
    assert [r.batch_id[-14:] for r in results] == names
    assert all("snapshot held" not in r.notes for r in results)
    assert first_day == end - timedelta(days=4) and known_before == 0
    assert open_records == results[-1].rows_loaded
