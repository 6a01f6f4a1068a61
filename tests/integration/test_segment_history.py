"""segment_history, one partition per as-of date (materialization partitioned_snapshot): a run
replaces exactly its date, retention drops the old daily snapshots and keeps month starts, and a
history kept as a plain table by an earlier version is converted without losing a row."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from ..helpers import DEMO_DATE, DemoMarts, local_midnight, run_dbt

pytestmark = pytest.mark.integration

COLUMNS = ("as_of_date, customer_key, lifecycle_stage, rfm_segment, value_tier, loyalty_tier, "
           "has_marketing_consent, rfmt_score, net_value_12m")
MONTH_START = date(2026, 1, 1)
OLD_DAILY = date(2026, 1, 2)  # more than 90 days before DEMO_DATE
RECENT_DAILY = DEMO_DATE - timedelta(days=10)


@pytest.fixture
def history(demo_marts: DemoMarts) -> Iterator[psycopg.Connection]:
    """The demo marts' connection; the snapshots a test adds are dropped afterwards (a test that
    changes the run's snapshot builds it again itself)."""
    with psycopg.connect(demo_marts.dsn, autocommit=True) as conn:
        yield conn
        for day in (MONTH_START, OLD_DAILY, RECENT_DAILY):
            conn.execute(f"drop table if exists marts_partitions.segment_history_{day:%Y%m%d}")


def _snapshot_of(conn: psycopg.Connection, day: date) -> None:
    """Add a snapshot of ``day`` to the history: the run's rows, dated ``day``."""
    conn.execute(f"""create table marts_partitions.segment_history_{day:%Y%m%d}
        partition of marts.segment_history for values in ('{day.isoformat()}')""")
    columns = COLUMNS.replace("as_of_date, ", "")
    conn.execute(f"""insert into marts.segment_history ({COLUMNS})
        select %s, {columns} from marts.segment_history where as_of_date = %s""",
                 (day, DEMO_DATE))


def _digests(conn: psycopg.Connection) -> dict[date, tuple[int, str]]:
    """Rows and md5 of each as-of date's snapshot."""
    rows = conn.execute(f"""select as_of_date, count(*),
            md5(string_agg(row({COLUMNS})::text, '|' order by customer_key))
        from marts.segment_history group by as_of_date""").fetchall()
    return {day: (count, digest) for day, count, digest in rows}


def _partitions(conn: psycopg.Connection) -> dict[str, str]:
    """Each partition of segment_history (schema-qualified name) and its bound."""
    rows = conn.execute("""select partitions.relid::regclass::text,
            pg_get_expr(tables.relpartbound, tables.oid)
        from pg_partition_tree('marts.segment_history'::regclass) as partitions
        inner join pg_class as tables on tables.oid = partitions.relid
        where partitions.isleaf""").fetchall()
    return dict(rows)


def test_a_run_replaces_its_date_and_retention_drops_old_dailies(
        history: psycopg.Connection, demo_marts: DemoMarts, tmp_path: Path) -> None:
    for day in (MONTH_START, OLD_DAILY, RECENT_DAILY):
        _snapshot_of(history, day)
    before = _digests(history)
    history.execute("update marts.customer_segments set value_tier = 'standard'"
                    " where value_tier = 'high_performer'")
    try:
        run_dbt(demo_marts.dsn, local_midnight(DEMO_DATE), "run", "--select", "segment_history",
                work_dir=tmp_path)
        after = _digests(history)
        partitions = _partitions(history)
        changed = history.execute("""select count(*) from marts.segment_history
            where as_of_date = %s and value_tier = 'high_performer'""", (DEMO_DATE,)).fetchone()
    finally:
        run_dbt(demo_marts.dsn, local_midnight(DEMO_DATE), "run", "--select",
                "customer_segments", "segment_history", work_dir=tmp_path)
    # the run's date rewritten from customer_segments, the kept dates untouched, the old daily
    # snapshot dropped (a month start is kept whatever its age)
    assert changed == (0,)
    assert after[DEMO_DATE][0] == before[DEMO_DATE][0] and after[DEMO_DATE] != before[DEMO_DATE]
    assert {day: after[day] for day in (MONTH_START, RECENT_DAILY)} == \
        {day: before[day] for day in (MONTH_START, RECENT_DAILY)}
    assert OLD_DAILY not in after
    assert partitions == {
        f"marts_partitions.segment_history_{day:%Y%m%d}": f"FOR VALUES IN ('{day.isoformat()}')"
        for day in (MONTH_START, RECENT_DAILY, DEMO_DATE)}


def test_a_plain_history_is_converted_without_losing_rows(
        history: psycopg.Connection, demo_marts: DemoMarts, tmp_path: Path) -> None:
    """A history kept as a plain table (the earlier incremental materialization) stops the run
    naming the conversion; the run-operation makes it a partitioned one with every snapshot it
    held, a view reading it (same view, same grants) reads the new one, and the run then goes."""
    _snapshot_of(history, RECENT_DAILY)
    before = _digests(history)
    history.execute("create table marts.segment_history_plain as select * from marts.segment_history")
    # the session's quality views read the history and go with it (each check run makes them anew)
    history.execute("drop table marts.segment_history cascade")
    history.execute("alter table marts.segment_history_plain rename to segment_history")
    history.execute("""create view marts.segment_history_sizes as
        select as_of_date, count(*) as customers from marts.segment_history group by as_of_date""")
    view = history.execute("select 'marts.segment_history_sizes'::regclass::oid").fetchone()
    try:
        refused = run_dbt(demo_marts.dsn, local_midnight(DEMO_DATE), "run", "--select",
                          "segment_history", work_dir=tmp_path, should_fail=True)
        assert "partitioned_snapshot_convert_plain_history" in refused
        run_dbt(demo_marts.dsn, local_midnight(DEMO_DATE), "run-operation",
                "partitioned_snapshot_convert_plain_history", "--args", "{model_name: segment_history}",
                work_dir=tmp_path)
        run_dbt(demo_marts.dsn, local_midnight(DEMO_DATE), "run", "--select", "segment_history",
                work_dir=tmp_path)
        kind = history.execute("""select relkind from pg_class
            where oid = 'marts.segment_history'::regclass""").fetchone()
        key = history.execute("""select pg_get_constraintdef(oid) from pg_constraint
            where conrelid = 'marts.segment_history'::regclass and contype = 'p'""").fetchone()
        sizes = dict(history.execute("select * from marts.segment_history_sizes").fetchall())
        view_after = history.execute("select 'marts.segment_history_sizes'::regclass::oid").fetchone()
        after = _digests(history)
        partitions = set(_partitions(history))
    finally:
        history.execute("drop view if exists marts.segment_history_sizes")
    assert kind == ("p",)
    assert key == ("PRIMARY KEY (as_of_date, customer_key)",)
    assert after == before
    assert partitions == {
        f"marts_partitions.segment_history_{day:%Y%m%d}" for day in (RECENT_DAILY, DEMO_DATE)}
    assert view_after == view
    assert sizes == {day: count for day, (count, _) in before.items()}


def test_a_run_of_an_old_date_keeps_its_own_snapshot(
        history: psycopg.Connection, demo_marts: DemoMarts, tmp_path: Path) -> None:
    """A backfill of a day more than the retention window before the newest snapshot writes its
    snapshot and keeps it (its checks read it after the post-hook); the newest date's run prunes
    it later."""
    _snapshot_of(history, RECENT_DAILY)
    history.execute("update marts.customer_segments set as_of_date = %s", (OLD_DAILY,))
    try:
        run_dbt(demo_marts.dsn, local_midnight(OLD_DAILY), "run", "--select", "segment_history",
                work_dir=tmp_path)
        kept = _digests(history)
    finally:
        run_dbt(demo_marts.dsn, local_midnight(DEMO_DATE), "run", "--select",
                "customer_segments", "segment_history", work_dir=tmp_path)
    pruned_later = _digests(history)
    assert kept[OLD_DAILY][0] == kept[DEMO_DATE][0] > 0
    assert set(kept) == {OLD_DAILY, RECENT_DAILY, DEMO_DATE}
    assert set(pruned_later) == {RECENT_DAILY, DEMO_DATE}
