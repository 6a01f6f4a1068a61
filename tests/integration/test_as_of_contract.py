"""The as-of contract (README, "Time"): what a run of date D writes about D is the same whether
D ran clean, after a later date (a backfill) or after an earlier one — raw keeps every version
of a record and staging reads each as of D, so corrections that arrived after D change nothing
of D — and the newest date's run after a backfill gives back exactly the current marts of its
clean run.

On the session's demo marts (built clean as of DEMO_DATE): build as of the day before (a backfill
after a later date: raw already holds the later day's lines), compare its snapshot with a clean
build of that day on a database loaded only up to it, then build DEMO_DATE again (after an
earlier date) and compare every current mart and DEMO_DATE's snapshot with the clean build's.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from trebol.extract.sources import load_sources
from trebol.summary import history_checksum, marts_checksum
from trebol.warehouse import ddl

from ..helpers import (
    DEMO_DATE,
    DemoMarts,
    SessionWarehouse,
    drop_database,
    fresh_database,
    load_sources_until,
    local_midnight,
    run_dbt,
)

pytestmark = pytest.mark.integration
EARLIER = DEMO_DATE - timedelta(days=1)
# what the history of a date is computed from (segment_history and its ancestors)
HISTORY_LINEAGE = ("--select", "+segment_history")


def test_a_dates_history_does_not_depend_on_the_order_of_runs(
        test_warehouse: SessionWarehouse, demo_marts: DemoMarts, tmp_path: Path) -> None:
    with psycopg.connect(demo_marts.dsn) as conn:
        clean_marts, clean_history = marts_checksum(conn), history_checksum(conn, DEMO_DATE)
    try:
        run_dbt(demo_marts.dsn, local_midnight(EARLIER), "run", *HISTORY_LINEAGE,
                work_dir=tmp_path / "backfill")
        with psycopg.connect(demo_marts.dsn) as conn:
            backfilled_checksum, backfilled = history_checksum(conn, EARLIER), _history(conn, EARLIER)
            corrected_later = _corrected_later(conn, local_midnight(EARLIER))
            later = [conn.execute(query, (local_midnight(EARLIER),)).fetchone()[0] for query in (
                "select count(*) from raw.pos_tickets where sold_at >= %s",
                "select count(*) from marts.fct_transactions where transacted_at >= %s")]
    finally:  # the demo marts as they were, without the backfill's snapshot
        run_dbt(demo_marts.dsn, local_midnight(DEMO_DATE), "run", *HISTORY_LINEAGE,
                work_dir=tmp_path / "again")
        with psycopg.connect(demo_marts.dsn, autocommit=True) as conn:
            conn.execute(f"drop table if exists marts_partitions.segment_history_{EARLIER:%Y%m%d}")
    with psycopg.connect(demo_marts.dsn) as conn:
        assert marts_checksum(conn) == clean_marts
        assert history_checksum(conn, DEMO_DATE) == clean_history
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_as_of_clean")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            ddl.bootstrap(conn)
            load_sources_until(conn, test_warehouse.pos_dsn, test_warehouse.settings.sources_dir,
                               EARLIER)
            run_dbt(dsn, local_midnight(EARLIER), "build", *HISTORY_LINEAGE, "--exclude",
                    "test_type:unit", "--indirect-selection", "cautious", work_dir=tmp_path / "clean")
            clean_checksum, clean = history_checksum(conn, EARLIER), _history(conn, EARLIER)
            assert conn.execute("select count(*) from marts.fct_transactions where transacted_on "
                                ">= %s", (EARLIER,)).fetchone()[0] == 0
            assert _corrected_later(conn, local_midnight(EARLIER)) == {}, \
                "the clean database holds nothing loaded after the earlier date"
    finally:
        drop_database(test_warehouse.dsn, dsn)
    assert later[0] > 0 and later[1] == 0, \
        f"raw held the later day's tickets ({later[0]}), the backfilled transactions none ({later[1]})"
    assert corrected_later["crm_cases"] > 0 and corrected_later["ecom_orders"] > 0, \
        f"the backfill's raw held later versions of records it reads: {corrected_later}"
    assert len(clean) > 100
    assert backfilled == clean, {key: (backfilled.get(key), clean.get(key))
                                 for key in set(clean) | set(backfilled)
                                 if backfilled.get(key) != clean.get(key)}
    assert backfilled_checksum == clean_checksum, "the earlier date's history, whole"


def _corrected_later(conn: psycopg.Connection, as_of: datetime) -> dict[str, int]:
    """Per versioned source, the records raw holds in a version available only at or after
    ``as_of`` beside one available before it (a correction a run as of ``as_of`` must not see)."""
    counts = {}
    for source in load_sources().values():
        if not source.keeps_versions:
            continue
        keys = sql.SQL(", ").join(map(sql.Identifier, source.primary_key))
        count = conn.execute(sql.SQL(
            "select count(*) from (select {k} from raw.{t} group by {k} having "
            "bool_or(_available_from < %(as_of)s) and bool_or(_available_from >= %(as_of)s)) as c"
        ).format(k=keys, t=sql.Identifier(source.target)), {"as_of": as_of}).fetchone()[0]
        if count:
            counts[source.name] = count
    return counts


def _history(conn: psycopg.Connection, day: date) -> dict[str, tuple]:
    """segment_history's rows of ``day``, by customer."""
    return {row[0]: row[1:] for row in conn.execute(
        "select customer_key, lifecycle_stage, rfm_segment, value_tier, loyalty_tier, "
        "has_marketing_consent, rfmt_score, net_value_12m from marts.segment_history "
        "where as_of_date = %s", (day,))}
