"""The run summary tells only its own run's facts: never an earlier run's push of the same date."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from trebol import summary
from trebol.warehouse import ddl

from ..helpers import DEMO_DATE, DemoMarts

pytestmark = pytest.mark.integration


def test_a_run_that_did_not_push_never_reports_an_earlier_push(demo_marts: DemoMarts,
                                                               tmp_path: Path) -> None:
    with psycopg.connect(demo_marts.dsn, autocommit=True) as conn:
        ddl.bootstrap(conn)
        conn.execute("""insert into activation.sync_runs (sync_name, audience, destination,
            as_of_date, run_id, status, members, held_out, added, changed, removed, failed,
            delivery) values ('winback__drop', 'aud_winback', 'drop', %s, 'earlier_run',
            'succeeded', 144, 14, 130, 0, 0, 0, '2026-06-30')""", (DEMO_DATE,))
        try:
            failed = summary.build_summary(conn, DEMO_DATE, tmp_path / "failed", "failed_run")
            earlier = summary.build_summary(conn, DEMO_DATE, tmp_path / "earlier", "earlier_run")
        finally:
            conn.execute("delete from activation.sync_runs where run_id = 'earlier_run'")
    assert failed["syncs"] == []
    assert failed["activation"] == "not run (a task before the push failed or has not run)"
    text = summary.render(failed)
    assert "  sync  " not in text and "activation not run" in text
    assert earlier["activation"] == "pushed"
    [pushed] = earlier["syncs"]
    assert (pushed["sync"], pushed["added"], pushed["held_out"]) == ("winback__drop", 130, 14)
    assert ("sync        winback__drop (drop): succeeded; added 130, changed 0, removed 0, "
            "held out 14, failed 0") in summary.render(earlier)


def test_a_marts_digest_ignores_row_order_and_sees_one_changed_value(demo_marts: DemoMarts) -> None:
    with psycopg.connect(demo_marts.dsn) as conn:
        digest = summary.marts_digests(conn)["dim_customers"]
        conn.execute("create table marts.digest_probe as select * from marts.dim_customers "
                     "order by md5(customer_key)")
        shuffled = summary._table_digest(conn, "digest_probe")
        conn.execute("""update marts.digest_probe set first_name = coalesce(first_name, '') || 'x'
                        where customer_key = (select min(customer_key) from marts.digest_probe)""")
        changed = summary._table_digest(conn, "digest_probe")
        conn.execute("delete from marts.digest_probe")
        empty = summary._table_digest(conn, "digest_probe")
        conn.rollback()
    assert shuffled == digest
    assert changed != digest
    assert empty not in (digest, changed)
