"""customer_segments joins customer_rfmt and customer_value in full, with dim_customers, so its
contract holds the two marts to the same customers, all in dim_customers: a customer missing from
any of the three stops the build (and the table built before stays)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ..helpers import DEMO_DATE, DemoMarts, local_midnight, run_dbt

pytestmark = pytest.mark.integration


@pytest.fixture
def marts(demo_marts: DemoMarts) -> Iterator[psycopg.Connection]:
    with psycopg.connect(demo_marts.dsn, autocommit=True) as conn:
        yield conn


def _segments_digest(conn: psycopg.Connection) -> tuple[int, str]:
    """Rows and md5 of customer_segments' customers and stages."""
    return conn.execute(
        "select count(*), md5(string_agg(customer_key || lifecycle_stage, ',' order by customer_key))"
        " from marts.customer_segments").fetchone()


@pytest.mark.parametrize("mart", ["customer_rfmt", "customer_value", "dim_customers"])
def test_a_customer_missing_from_one_mart_stops_the_build(
        marts: psycopg.Connection, demo_marts: DemoMarts, tmp_path: Path, mart: str) -> None:
    segments_before = _segments_digest(marts)
    key = marts.execute("select min(customer_key) from marts.customer_segments").fetchone()[0]
    with marts.cursor() as cursor:
        cursor.execute(f"delete from marts.{mart} where customer_key = %s returning *", (key,))
        removed = cursor.fetchone()
        columns = [column.name for column in cursor.description]
    try:
        output = run_dbt(demo_marts.dsn, local_midnight(DEMO_DATE), "run", "--select",
                         "customer_segments", work_dir=tmp_path, should_fail=True)
        segments_after = _segments_digest(marts)
    finally:
        marts.execute(f"insert into marts.{mart} ({', '.join(columns)})"
                      f" values ({', '.join(['%s'] * len(columns))})", removed)
    assert 'null value in column' in output and 'customer_segments' in output
    assert segments_after == segments_before
