"""The suppression list at load, on a real PostgreSQL of its own: the rows of erased people are
neither loaded nor quarantined, on the fast path and the general one, and counted (rows read =
loaded + quarantined + suppressed); without the salt, or with another, the load stops with one
line; identifiers are normalised the same in Python and in SQL."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

from trebol.erasure.identifiers import (
    DEFAULT_PHONE_RULE,
    IdentifierRefused,
    hash_sql,
    normalise,
    normalised_sql,
    requested_identifier,
    salt_fingerprint,
    salted_hash,
)
from trebol.erasure.suppression import Suppression
from trebol.extract import load
from trebol.extract.sources import Column, Source
from trebol.interval import Interval
from trebol.settings import SettingsError, load_settings
from trebol.warehouse import ddl

from ..helpers import SessionWarehouse, drop_database, fresh_database

pytestmark = pytest.mark.integration
SALT = "suppression-test-salt-0123"
END = datetime(2026, 6, 30, tzinfo=ZoneInfo("Europe/Madrid"))
INTERVAL = Interval(END - timedelta(days=1), END)
PEOPLE = Source(
    name="t_people", kind="files", path="t_people/*.csv", target="t_people", primary_key=("id",),
    version_column="updated_at",
    columns=(Column("id", "text", "id", required=True, identifies="crm_contact"),
             Column("email", "text", "email", identifies="email"),
             Column("phone", "text", "phone", identifies="phone"),
             Column("visits", "integer", "visits"),
             Column("updated_at", "timestamptz", "updated_at", required=True)))
PHONES = ["+34 600 111 222", "600111222", "0034600111222", "34600111222", " 600-11-12-22 ",
          "+1 (800) 555-0100", "12", "", "+34-600", "(+34) 600 111 222", "0044 20 7946 0958"]


@pytest.fixture(scope="module")
def dsn(test_warehouse: SessionWarehouse) -> Iterator[str]:
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_suppression")
    with psycopg.connect(dsn, autocommit=True) as conn:
        ddl.bootstrap(conn)
        rows = [(salted_hash(SALT, kind, value), kind, salt_fingerprint(SALT), uuid.uuid4())
                for kind, value in (("email", "ann@example.com"), ("phone", "+34600111222"),
                                    ("crm_contact", "P9"))]
        conn.cursor().executemany("insert into raw._suppression_list values (%s, %s, %s, %s)", rows)
    yield dsn
    drop_database(test_warehouse.dsn, dsn)


def _write(folder: Path, day: str, lines: list[str]) -> None:
    path = folder / "t_people" / f"{day}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["id,email,phone,visits,updated_at", *lines]) + "\n")


def test_erased_people_are_neither_loaded_nor_quarantined(dsn: str, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    at = "2026-06-29T10:00:00+02:00"
    _write(tmp_path, "2026-06-27", [f"p0,ann@example.com,,1,{at}", f"p8,fay@example.com,,8,{at}"])
    _write(tmp_path, "2026-06-28", [f"p1, Ann@Example.COM ,,1,{at}", f"p2,bob@example.com,600 111 222,2,{at}",
                                    f"p3,carl@example.com,,3,{at}"])
    _write(tmp_path, "2026-06-29", [f"p4,ann@example.com,,many,{at}", f"p5,dora@example.com,,many,{at}",
                                    f"P9,,,1,{at}", f"p6,eve@example.com,,6,{at}"])
    suppression = Suppression(SALT, DEFAULT_PHONE_RULE)
    with psycopg.connect(dsn, autocommit=True) as conn, caplog.at_level(logging.INFO):
        earlier, first, second = load.extract_and_load(conn, PEOPLE, tmp_path, INTERVAL, 3, "Europe/Madrid",
                                              suppression=suppression)
        rows = conn.execute("select id from raw.t_people order by id").fetchall()
        quarantined = conn.execute("select payload from raw._quarantine").fetchall()
        audit = conn.execute("select rows_read, rows_loaded, rows_quarantined, rows_suppressed "
                             "from raw._load_audit order by batch_id").fetchall()
    # the files took the shortcut together, each counting its own erased rows (and the bad
    # number quarantined)
    general = [record.getMessage() for record in caplog.records if "general path" in record.getMessage()]
    assert general == []
    assert [(r.rows_read, r.rows_loaded, r.rows_quarantined, r.rows_suppressed)
            for r in (earlier, first, second)] == [(2, 1, 0, 1), (3, 1, 0, 2), (4, 1, 1, 2)] == audit
    assert rows == [("p3",), ("p6",), ("p8",)]
    assert quarantined == [(f"p5,dora@example.com,,many,{at}",)]  # ann's bad line is not kept


def test_without_the_salt_or_with_another_a_load_stops_with_one_line(dsn: str, tmp_path: Path) -> None:
    _write(tmp_path, "2026-06-29", ["p7,x@example.com,,1,2026-06-29T10:00:00+02:00"])
    with psycopg.connect(dsn, autocommit=True) as conn:
        for salt, message in ((None, "TREBOL_ERASURE_SALT: not set, but the suppression list holds 3"),
                              ("another-salt-0123456789", "not the salt the suppression list was made")):
            with pytest.raises(SettingsError, match=message) as error:
                load.extract_and_load(conn, PEOPLE, tmp_path, INTERVAL, 3, "Europe/Madrid",
                                      suppression=Suppression(salt, DEFAULT_PHONE_RULE))
            assert "\n" not in str(error.value) and SALT not in str(error.value)
        assert conn.execute("select count(*) from raw._load_audit where batch_id like %s",
                            ("%2026-06-29%",)).fetchone()[0] in (0, 1)  # nothing new recorded


def test_python_and_sql_normalise_and_hash_alike(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for kind, values in (("phone", PHONES), ("email", [" Ann@Example.COM ", "x@y", ""]),
                             ("loyalty_card", [" 9900000001 ", "", "A 1"])):
            for value in values:
                in_sql, hashed = conn.execute(sql.SQL("select {}, {}").format(
                    normalised_sql(kind, sql.Literal(value), DEFAULT_PHONE_RULE),
                    hash_sql(kind, sql.Literal(value), DEFAULT_PHONE_RULE)), {"salt": SALT}).fetchone()
                expected = normalise(kind, value, DEFAULT_PHONE_RULE)
                assert in_sql == expected, (kind, value)
                assert hashed == (salted_hash(SALT, kind, expected) if expected else None)


def test_a_request_names_an_identifier_staging_would_read() -> None:
    settings = load_settings()
    assert requested_identifier("phone", "600 11 12 22", settings) == "+34600111222"
    assert requested_identifier("email", " Ann@Example.COM", settings) == "ann@example.com"
    assert requested_identifier("customer_key", "C0123456789abcdef", settings) == "C0123456789abcdef"
    for kind, value, reason in (("email", "no-at-sign", "not one staging"),
                                ("phone", "+34999999999", "placeholder"),
                                ("customer_key", "c123", "16 lower-case hex"),
                                ("name", "Ann", "not one of"), ("loyalty_card", "a\tb", "control")):
        with pytest.raises(IdentifierRefused, match=reason) as refused:
            requested_identifier(kind, value, settings)
        assert value not in str(refused.value)
