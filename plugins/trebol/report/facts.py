"""What the run report shows, read from the warehouse: one query per section, each small (counts
and aggregates, never a row per customer), so the report costs the same at a million customers.

Every figure is of the run's date: the batches audited for the run's interval, the marts as of
the date (the summary task runs before a backfill rebuilds the current marts as of the newest
date), the snapshots ``segment_history`` holds up to the date.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import psycopg
from psycopg import sql

from trebol.interval import Interval
from trebol.warehouse.catalog import query_frame, relation_exists

SEGMENTATIONS = ("value_tier", "rfm_segment", "lifecycle_stage")
CLV_BINS = 30


def source_rows(conn: psycopg.Connection, interval: Interval, sources: list[str]) -> pd.DataFrame:
    """Per declared source, the batches audited for the run's interval: batches, rows read,
    loaded, quarantined and suppressed, and snapshots held (a source without a batch: zeros)."""
    frame = pd.DataFrame({"source": sorted(sources)})
    if relation_exists(conn, "raw._load_audit"):
        audited = query_frame(conn, """
            select source, count(*) as batches, sum(rows_read) as read, sum(rows_loaded) as loaded,
                   sum(rows_quarantined) as quarantined, sum(rows_suppressed) as suppressed,
                   count(held_reason) as held
            from raw._load_audit where interval_start = %s and interval_end = %s
            group by source""", (interval.start, interval.end))
        if not audited.empty:
            frame = frame.merge(audited, on="source", how="outer")
    counts = ["batches", "read", "loaded", "quarantined", "suppressed", "held"]
    frame = frame.reindex(columns=["source", *counts])
    frame[counts] = frame[counts].fillna(0).astype("int64")
    return frame.sort_values("source", ignore_index=True)


def quarantine_reasons(conn: psycopg.Connection, interval: Interval, limit: int = 10) -> pd.DataFrame:
    """The commonest reasons rows of the run's batches went to quarantine, with their count."""
    if not relation_exists(conn, "raw._quarantine"):
        return pd.DataFrame(columns=["source", "reason", "rows"])
    return query_frame(conn, """
        select q.source, q.reason, count(*) as rows
        from raw._quarantine q
        join raw._load_audit a on a.source = q.source and a.batch_id = q.batch_id
        where a.interval_start = %s and a.interval_end = %s
        group by q.source, q.reason
        order by count(*) desc, q.source, q.reason
        limit %s""", (interval.start, interval.end, limit))


def suite_results(conn: psycopg.Connection, run_key: str) -> pd.DataFrame:
    """Per Great Expectations suite of the run: checks passed, errors and warnings failed."""
    if not relation_exists(conn, "marts.data_quality_results"):
        return pd.DataFrame(columns=["suite", "passed", "errors", "warnings"])
    return query_frame(conn, """
        select suite, count(*) filter (where success) as passed,
               count(*) filter (where not success and severity = 'error') as errors,
               count(*) filter (where not success and severity <> 'error') as warnings
        from marts.data_quality_results where run_id = %s
        group by suite order by suite""", (run_key,))


def previous_snapshot(conn: psycopg.Connection, as_of_date: date) -> date | None:
    """The newest ``segment_history`` date before the run's."""
    if not relation_exists(conn, "marts.segment_history"):
        return None
    return conn.execute("select max(as_of_date) from marts.segment_history where as_of_date < %s",
                        (as_of_date,)).fetchone()[0]


def segment_sizes(conn: psycopg.Connection, as_of_date: date, previous: date | None) -> pd.DataFrame:
    """Customers per segment of each segmentation on the run's date and on the previous snapshot
    (``previous``; zero when none), with the change."""
    columns = ["segmentation", "segment", "customers", "previous", "change"]
    if not relation_exists(conn, "marts.segment_history"):
        return pd.DataFrame(columns=columns)
    parts = [sql.SQL("select {name} as segmentation, {column}::text as segment, as_of_date, "
                     "count(*) as customers from marts.segment_history "
                     "where as_of_date in ({today}, {before}) group by {column}, as_of_date").format(
        name=sql.Literal(column), column=sql.Identifier(column), today=sql.Literal(as_of_date),
        before=sql.Literal(previous or as_of_date)) for column in SEGMENTATIONS]
    counts = query_frame(conn, sql.SQL(" union all ").join(parts))
    if counts.empty:
        return pd.DataFrame(columns=columns)
    today = counts[counts["as_of_date"] == as_of_date].drop(columns="as_of_date")
    before = counts[counts["as_of_date"] == previous].drop(columns="as_of_date").rename(
        columns={"customers": "previous"})
    sizes = today.merge(before, on=["segmentation", "segment"], how="outer")
    sizes[["customers", "previous"]] = sizes[["customers", "previous"]].fillna(0).astype("int64")
    sizes["change"] = sizes["customers"] - sizes["previous"]
    order = {name: rank for rank, name in enumerate(SEGMENTATIONS)}
    sizes = sizes.sort_values(["segmentation", "customers"], ascending=[True, False],
                              key=lambda s: s.map(order) if s.name == "segmentation" else s)
    return sizes[columns].reset_index(drop=True)


def rfm_grid(conn: psycopg.Connection, as_of_date: date) -> pd.DataFrame:
    """Customers and their mean monetary value (net spend) per recency and frequency score."""
    if not relation_exists(conn, "marts.customer_rfmt"):
        return pd.DataFrame(columns=["r_score", "f_score", "customers", "mean_monetary"])
    return query_frame(conn, """
        select r_score, f_score, count(*) as customers,
               round(avg(monetary_total)::numeric, 2)::float8 as mean_monetary
        from marts.customer_rfmt where as_of_date = %s
        group by r_score, f_score order by r_score, f_score""", (as_of_date,))


def clv_histogram(conn: psycopg.Connection, as_of_date: date, bins: int = CLV_BINS) -> pd.DataFrame:
    """Customers per predicted-CLV bin and churn-risk band: ``bins`` equal bins from the lowest
    value to the 99th percentile, the values above it in the last one (a long tail would
    otherwise squeeze every other customer into one bar).

    Two statements, the bounds first: in one, a planner that takes the date's rows (written by
    this run's fit, not analysed yet) for a handful may rescan the bounds' aggregate once per
    customer (seen at 100,000 customers: minutes instead of a tenth of a second)."""
    columns = ["bin_start", "bin_end", "churn_risk_band", "customers"]
    if not relation_exists(conn, "marts.customer_clv"):
        return pd.DataFrame(columns=columns)
    low, high = conn.execute("""
        select min(predicted_clv)::float8,
               percentile_cont(0.99) within group (order by predicted_clv::float8)
        from marts.customer_clv where as_of_date = %s and predicted_clv is not null""",
                             (as_of_date,)).fetchone()
    if low is None:
        return pd.DataFrame(columns=columns)
    high = max(high, low + 1e-6)
    return query_frame(conn, """
        select %(low)s + (bucket - 1) * %(width)s as bin_start, %(low)s + bucket * %(width)s as bin_end,
               churn_risk_band, count(*) as customers
        from (select least(width_bucket(predicted_clv::float8, %(low)s, %(high)s, %(bins)s), %(bins)s)
                         as bucket, churn_risk_band
              from marts.customer_clv where as_of_date = %(day)s and predicted_clv is not null) binned
        group by bucket, churn_risk_band
        order by bucket, churn_risk_band""",
                  {"day": as_of_date, "bins": bins, "low": low, "high": high,
                   "width": (high - low) / bins})


def migration_dates(conn: psycopg.Connection, as_of_date: date) -> tuple[date, date] | None:
    """The two snapshots a migration compares: the last two month ends ``segment_history``
    holds up to the run's date (its month-start snapshots: the state at the end of each month);
    with fewer, the previous snapshot and the run's date; None with one snapshot."""
    if not relation_exists(conn, "marts.segment_history"):
        return None
    dates = [row[0] for row in conn.execute("""
        select distinct as_of_date from marts.segment_history where as_of_date <= %s
        order by as_of_date desc""", (as_of_date,)).fetchall()]
    month_ends = [day for day in dates if day.day == 1]
    if len(month_ends) >= 2:
        return month_ends[1], month_ends[0]
    return (dates[1], dates[0]) if len(dates) >= 2 else None


def segment_migration(conn: psycopg.Connection, dates: tuple[date, date]) -> pd.DataFrame:
    """Customers per (from segment, to segment) of each segmentation between the two snapshots;
    a customer absent from one of them counts as ``(none)``."""
    parts = [sql.SQL("""
        select {name} as segmentation,
               coalesce(f.{column}::text, '(none)') as from_segment,
               coalesce(t.{column}::text, '(none)') as to_segment, count(*) as customers
        from (select * from marts.segment_history where as_of_date = {start}) f
        full join (select * from marts.segment_history where as_of_date = {end}) t
            on t.customer_key = f.customer_key
        group by 1, 2, 3""").format(name=sql.Literal(column), column=sql.Identifier(column),
                                    start=sql.Literal(dates[0]), end=sql.Literal(dates[1]))
        for column in SEGMENTATIONS]
    return query_frame(conn, sql.SQL(" union all ").join(parts) + sql.SQL(" order by 1, 2, 3"))
