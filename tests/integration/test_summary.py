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
        conn.execute("""insert into activation.push_log (audience, destination, as_of_date,
            rows_pushed, target, content_sha256, run_id)
            values ('winback_at_risk', 'file', %s, 130, %s, 'abc', 'earlier_run')""",
                     (DEMO_DATE, str(tmp_path / "x.csv")))
        try:
            failed = summary.build_summary(conn, DEMO_DATE, tmp_path / "failed", "failed_run")
            earlier = summary.build_summary(conn, DEMO_DATE, tmp_path / "earlier", "earlier_run")
        finally:
            conn.execute("delete from activation.push_log where run_id = 'earlier_run'")
    assert failed["pushes"] == []
    assert failed["activation"] == "not run (a task before the push failed or has not run)"
    text = summary.render(failed)
    assert "pushed      " not in text and "activation not run" in text
    assert earlier["activation"] == "pushed"
    assert earlier["pushes"] == [{"audience": "winback_at_risk", "destination": "file", "rows": 130,
                                  "target": str(tmp_path / "x.csv")}]
