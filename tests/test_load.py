"""Extraction and COPY loading into raw: nothing lost, idempotent, newest version wins."""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from trebol import load
from trebol.load import Interval
from trebol.simulator import SimulationResult
from trebol.sources import Column, Source, load_sources

from .conftest import SessionWarehouse, source_connector

pytestmark = pytest.mark.integration
TZ = "Europe/Madrid"


def _interval(day: date) -> Interval:
    """The interval of the run whose logical date is ``day`` (it covers the day before)."""
    end = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(TZ))
    return Interval(end - timedelta(days=1), end)


def _source(name: str, kind: str = "files") -> Source:
    return Source(
        name=name, kind=kind, path=f"{name}/*.csv", target=name, primary_key=("id",),
        version_column="updated_at" if kind == "files" else None,
        columns=(Column("id", "text", "id", required=True),
                 Column("amount", "numeric", "amount", required=True, minimum=Decimal(-10),
                        maximum=Decimal(1000)),
                 Column("updated_at", "timestamptz", "updated_at", required=True,
                        not_after_interval_end=True)))


def _write(folder: Path, name: str, day: str, lines: list[str] | bytes) -> Path:
    path = folder / name / f"{day}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(lines, bytes):
        path.write_bytes(lines)
    else:
        path.write_text("\n".join(["id,amount,updated_at", *lines]) + "\n", encoding="utf-8")
    return path


def _rows(conn: psycopg.Connection, table: str) -> list[tuple]:
    return conn.execute(f"select * from raw.{table} order by id").fetchall()


def _checksum(conn: psycopg.Connection, table: str) -> str:
    return conn.execute(f"select md5(string_agg(t::text, '|' order by t::text)) from raw.{table} t"
                        ).fetchone()[0]


def test_every_row_is_loaded_or_quarantined_with_its_reason(test_warehouse: SessionWarehouse,
                                                            tmp_path: Path) -> None:
    source = _source("t_faults")
    _write(tmp_path, source.name, "2026-06-01", [
        "a,10.50,2026-06-01T10:00:00+02:00",
        "b,n/a,2026-06-01T10:00:00+02:00",
        ",3,2026-06-01T10:00:00+02:00",
        "c,5000,2026-06-01T10:00:00+02:00",
        "d,1,2099-01-01T00:00:00+00:00",
        "e,1",
        "a,10.50,2026-06-01T10:00:00+02:00",
        "f,2,yesterday",
    ])
    with test_warehouse.connect() as conn:
        [result] = load.extract_and_load(conn, source, tmp_path, _interval(date(2026, 6, 2)), 0, TZ)
        assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (8, 1, 7)
        reasons = dict(conn.execute(
            "select line_number, reason from raw._quarantine where source = %s",
            (source.name,)).fetchall())
        audit = conn.execute("select rows_read, rows_loaded, rows_quarantined from raw._load_audit "
                             "where source = %s", (source.name,)).fetchone()
        payload = conn.execute("select payload from raw._quarantine where source = %s and "
                               "line_number = 3", (source.name,)).fetchone()[0]
    assert audit == (8, 1, 7)
    assert reasons[3] == "amount: 'n/a' is not a number"
    assert reasons[4] == "id: missing value"
    assert reasons[5] == "amount: 5000 is above the plausible maximum 1000"
    assert reasons[6].startswith("updated_at: 2099-01-01T00:00:00+00:00 is after the data interval end")
    assert reasons[7] == "expected 3 fields as in the header, got 2"
    assert reasons[8] == "duplicate key (id=a): superseded by line 2"
    assert reasons[9] == "updated_at: 'yesterday' is not an ISO timestamp"
    assert payload == "b,n/a,2026-06-01T10:00:00+02:00"


def test_latin1_bytes_and_missing_columns_are_quarantined(test_warehouse: SessionWarehouse,
                                                          tmp_path: Path) -> None:
    source = _source("t_encoding")
    _write(tmp_path, source.name, "2026-06-01",
           "id,amount,updated_at\nok,1,2026-06-01T09:00:00+02:00\n"
           "Mu\xf1oz,2,2026-06-01T09:00:00+02:00\n".encode("latin-1"))
    other = _source("t_header")
    _write(tmp_path, other.name, "2026-06-01", b"id,updated_at\nx,2026-06-01T09:00:00+02:00\n")
    with test_warehouse.connect() as conn:
        [encoding] = load.extract_and_load(conn, source, tmp_path, _interval(date(2026, 6, 2)), 0, TZ)
        [header] = load.extract_and_load(conn, other, tmp_path, _interval(date(2026, 6, 2)), 0, TZ)
        reasons = conn.execute("select source, reason, payload from raw._quarantine "
                               "where source in ('t_encoding', 't_header') order by source").fetchall()
    assert (encoding.rows_loaded, encoding.rows_quarantined) == (1, 1)
    assert (header.rows_loaded, header.rows_quarantined) == (0, 1)
    assert reasons[0] == ("t_encoding", "not valid UTF-8 (Latin-1 bytes?)",
                          "Muñoz,2,2026-06-01T09:00:00+02:00")
    assert reasons[1][1] == "column(s) amount missing from the header"


def test_newest_version_wins_whatever_the_load_order(test_warehouse: SessionWarehouse,
                                                     tmp_path: Path) -> None:
    for name, order in (("t_order_a", (2, 3)), ("t_order_b", (3, 2))):
        source = _source(name)
        _write(tmp_path, name, "2026-06-01", ["x,1,2026-06-01T09:00:00+02:00",
                                              "y,5,2026-06-01T09:00:00+02:00"])
        _write(tmp_path, name, "2026-06-02", ["x,2,2026-06-02T09:00:00+02:00"])
        with test_warehouse.connect() as conn:
            for day in order:
                load.extract_and_load(conn, source, tmp_path, _interval(date(2026, 6, day)), 0, TZ)
            assert [(r[0], str(r[1])) for r in _rows(conn, name)] == [("x", "2"), ("y", "5")]
    with test_warehouse.connect() as conn:
        loaded = [[(*row[:3], Path(row[3]).name) for row in _rows(conn, name)]
                  for name in ("t_order_a", "t_order_b")]
    assert loaded[0] == loaded[1], "same rows, same batch files, whatever the order"


def test_snapshots_are_diffed_into_history_in_any_run_order(test_warehouse: SessionWarehouse,
                                                            tmp_path: Path) -> None:
    histories = []
    for name, run_days in (("t_snap_in_order", (2, 3, 2)), ("t_snap_latest_only", (3,))):
        source = _source(name, kind="snapshot")
        _write(tmp_path, name, "2026-06-01", ["a,1,2026-06-01T09:00:00+02:00",
                                              "b,1,2026-06-01T09:00:00+02:00"])
        _write(tmp_path, name, "2026-06-02", ["a,2,2026-06-02T09:00:00+02:00"])
        with test_warehouse.connect() as conn:
            batches = [load.extract_and_load(conn, source, tmp_path, _interval(date(2026, 6, day)), 0, TZ)
                       for day in run_days]
            histories.append(conn.execute(
                f"select id, amount, _valid_from, _valid_to from raw.{name} "
                "order by id, _valid_from").fetchall())
        assert batches[-1] == [] or len(run_days) == 1, "a re-run applies nothing again"
    assert histories[0] == histories[1]
    assert [(r[0], str(r[1]), r[2].isoformat(), r[3] and r[3].isoformat()) for r in histories[0]] == [
        ("a", "1", "2026-06-01", "2026-06-02"),
        ("a", "2", "2026-06-02", None),
        ("b", "1", "2026-06-01", "2026-06-02"),
    ]


def test_demo_sources_load_idempotently_and_match_ground_truth(
        test_warehouse: SessionWarehouse, demo_sources: SimulationResult) -> None:
    settings = test_warehouse.settings
    sources = load_sources()
    connect = source_connector(test_warehouse.pos_dsn)
    last_day = settings.demo_date

    def load_all(conn: psycopg.Connection, day: date) -> dict[str, list[load.BatchResult]]:
        return {name: load.extract_and_load(conn, source, settings.sources_dir, _interval(day),
                                            settings.lookback_days, TZ, connect)
                for name, source in sources.items()}

    with test_warehouse.connect() as conn:
        first = load_all(conn, last_day)
        checksums = {name: _checksum(conn, s.target) for name, s in sources.items()}
        again = load_all(conn, last_day)
        load_all(conn, last_day - timedelta(days=20))
        assert {name: _checksum(conn, s.target) for name, s in sources.items()} == checksums, \
            "a re-run and an out-of-order backfill change no raw table"
        quarantined = conn.execute(
            "select source, batch_id, line_number, payload from raw._quarantine "
            "where source = any(%s)", (list(sources),)).fetchall()
        notes = dict(conn.execute("select batch_id, notes from raw._load_audit "
                                  "where source = 'loyalty_points' and notes is not null").fetchall())
    assert len(first["ecom_orders"]) == settings.demo_days, "the first run loads every earlier file"
    assert len(again["ecom_orders"]) == settings.lookback_days + 1, "a re-run reloads its window"
    assert [b.batch_id.startswith("-infinity/") for b in first["pos_tickets"]] == [True]
    assert sum(b.rows_read for b in first["crm_contacts"]) == sum(
        1 for path in settings.sources_dir.glob("crm/contacts/*.csv")
        for line in path.read_bytes().splitlines()[1:] if line.strip()), "every line is counted"

    with (settings.sources_dir / "ground_truth" / "faults.csv").open() as handle:
        faults = list(csv.DictReader(handle))
    file_faults = {(f["location"], int(f["line"])): f["kind"] for f in faults if f["line"]}
    in_files = {(batch, line) for source, batch, line, _ in quarantined
                if sources[source].kind != "postgres"}
    assert in_files <= set(file_faults), "nothing but injected faults is quarantined"
    always_caught = {"duplicate", "future_date", "missing_key", "malformed_line", "latin1_bytes",
                     "invalid_json"}
    missed = {k: v for k, v in file_faults.items() if v in always_caught and k not in in_files}
    assert not missed, f"faults not quarantined: {missed}"
    assert {kind for kind in file_faults.values()} >= always_caught
    drift = {f["kind"]: f["location"] for f in faults if f["kind"].endswith("_column")}
    assert notes[drift["extra_column"]] == "extra column(s) source_channel ignored"
    assert notes[drift["missing_column"]] == "column(s) reference_id missing"
    pos_keys = {payload.split(",")[0] for source, _, _, payload in quarantined
                if sources[source].kind == "postgres"}
    pos_faults = {f["key"] for f in faults if f["source"] == "pos"
                  and f["kind"] in ("absurd_amount", "future_date")}
    assert pos_faults and pos_faults <= pos_keys
