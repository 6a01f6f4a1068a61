"""The ``quality`` schema: views that put each run's data in the shape the suites validate.

Every view has an ``as_of_date`` column (the local date of the run's interval end), the column
Great Expectations batches on, so a suite sees exactly one run's rows:

- ``loaded_<target>``: the rows of a raw table that the batches audited for the run loaded
  (``raw._load_audit``), not the whole table;
- ``raw_source_days``: per source and run, rows read and quarantined, the share quarantined, and
  the day's volume against the usual of the previous days (kept in the warehouse: the audit for
  file sources, the raw rows by day for cursor sources);
- ``segment_size_drift``: customers per segment against the previous as-of date of
  ``marts.segment_history``;
- ``audience_consent``: each staged audience member with its customer's consent in
  ``marts.dim_customers``.

The views are (re)created by the check tasks, from ``sources.yml`` and ``quality.yml``: the
dbt tables they read may have been rebuilt (a ``drop ... cascade``) since the last run.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import sql

from trebol.extract.sources import Source
from trebol.quality.rules import QualityRules, QualityRulesError

SCHEMA = "quality"
SEGMENTATIONS = ("lifecycle_stage", "rfm_segment", "value_tier")


def loaded_view(source: Source) -> str:
    """Name of the view of the rows a run loaded into the source's raw table."""
    return f"loaded_{source.target}"


def _as_of(column: str, timezone: str) -> sql.Composed:
    return sql.SQL("(({} at time zone {})::date)").format(sql.SQL(column), sql.Literal(timezone))


def _replace(conn: psycopg.Connection, name: str, query: sql.Composable) -> None:
    view = sql.Identifier(SCHEMA, name)
    conn.execute(sql.SQL("drop view if exists {}").format(view))
    conn.execute(sql.SQL("create view {} as {}").format(view, query))


def _loaded_rows(source: Source, timezone: str) -> sql.Composed:
    return sql.SQL(
        "select {as_of} as as_of_date, loaded.* from raw.{table} as loaded "
        "inner join raw._load_audit as audit on audit.source = {name} "
        "and audit.batch_id = loaded._batch_id").format(
            as_of=_as_of("audit.interval_end", timezone), table=sql.Identifier(source.target),
            name=sql.Literal(source.name))


def _day_rows(sources: Iterable[Source], rules: QualityRules, timezone: str) -> sql.Composed:
    """(source, day, day_rows): rows each source brought for each local day."""
    by_source = {source.name: source for source in sources}
    parts: list[sql.Composable] = [sql.SQL(
        "select source, file_day as day, sum(rows_read) as day_rows from raw._load_audit "
        "where file_day is not null group by source, file_day")]
    for name, column in sorted(rules.volume_day_columns.items()):
        source = by_source.get(name)
        if source is None or source.kind != "postgres" or column not in source.stored_column_names:
            raise QualityRulesError(f"quality.yml: raw.volume.day_columns.{name}: {column!r} is not "
                                    "a stored column of a postgres source")
        day = _as_of(column, timezone)
        parts.append(sql.SQL(
            "select {name}, {day}, count(*) from raw.{table} where {column} is not null "
            "group by {day}").format(name=sql.Literal(name), day=day,
                                     table=sql.Identifier(source.target),
                                     column=sql.Identifier(column)))
    return sql.SQL(" union all ").join(parts)


def _source_days(sources: Iterable[Source], rules: QualityRules, timezone: str) -> sql.Composed:
    return sql.SQL("""
        with audited as (
            select source, {as_of} as as_of_date, sum(rows_read) as rows_read,
                sum(rows_quarantined) as rows_quarantined
            from raw._load_audit
            group by source, {as_of}
        ),
        day_rows as ({day_rows}),
        usual as (
            select audited.source, audited.as_of_date, coalesce(today.day_rows, 0) as day_rows,
                history.days as history_days, history.median_rows as usual_day_rows
            from audited
            left join day_rows as today
                on today.source = audited.source and today.day = audited.as_of_date - 1
            cross join lateral (
                select count(*) as days,
                    percentile_cont(0.5) within group (order by previous.day_rows) as median_rows
                from day_rows as previous
                where previous.source = audited.source
                    and previous.day < audited.as_of_date - 1
                    and previous.day >= audited.as_of_date - 1 - {history_days}
            ) as history
        )
        select audited.as_of_date, audited.source, audited.rows_read, audited.rows_quarantined,
            case when audited.rows_read >= {min_rows}
                then round(audited.rows_quarantined::numeric / audited.rows_read, 4)
            end as quarantined_share,
            usual.day_rows, usual.history_days, usual.usual_day_rows,
            case when usual.history_days >= {min_history} and usual.usual_day_rows >= {min_usual}
                then round((usual.day_rows / usual.usual_day_rows)::numeric, 4)
            end as volume_ratio
        from audited
        inner join usual on usual.source = audited.source and usual.as_of_date = audited.as_of_date
        """).format(as_of=_as_of("interval_end", timezone), day_rows=_day_rows(sources, rules, timezone),
                    history_days=sql.Literal(rules.volume_history_days),
                    min_rows=sql.Literal(rules.min_rows_for_share),
                    min_history=sql.Literal(rules.volume_min_history_days),
                    min_usual=sql.Literal(rules.volume_min_usual_rows))


def _segment_sizes(rules: QualityRules) -> sql.Composed:
    sizes = sql.SQL(" union all ").join(
        sql.SQL("select as_of_date, {label} as segmentation, {column} as segment, count(*) as "
                "customers from marts.segment_history group by as_of_date, {column}").format(
            label=sql.Literal(column), column=sql.Identifier(column)) for column in SEGMENTATIONS)
    return sql.SQL("""
        with sizes as ({sizes}),
        dates as (
            select as_of_date, lag(as_of_date) over (order by as_of_date) as previous_as_of_date
            from (select distinct as_of_date from marts.segment_history) as kept
        ),
        pairs as (
            select dates.as_of_date, dates.previous_as_of_date, segments.segmentation,
                segments.segment
            from dates
            inner join sizes as segments
                on segments.as_of_date in (dates.as_of_date, dates.previous_as_of_date)
            group by 1, 2, 3, 4
        )
        select pairs.as_of_date, pairs.segmentation, pairs.segment,
            coalesce(today.customers, 0) as customers, pairs.previous_as_of_date,
            coalesce(previous.customers, 0) as previous_customers,
            case when greatest(today.customers, previous.customers) >= {min_customers}
                then round(coalesce(today.customers, 0)::numeric
                           / nullif(coalesce(previous.customers, 0), 0), 4)
            end as size_ratio
        from pairs
        left join sizes as today on today.as_of_date = pairs.as_of_date
            and today.segmentation = pairs.segmentation and today.segment = pairs.segment
        left join sizes as previous on previous.as_of_date = pairs.previous_as_of_date
            and previous.segmentation = pairs.segmentation and previous.segment = pairs.segment
        """).format(sizes=sizes, min_customers=sql.Literal(rules.segment_drift_min_customers))


# consent is the customer's in dim_customers (false when the key is unknown there)
AUDIENCE_CONSENT = sql.SQL("""
    select members.as_of_date, members.audience, members.customer_key, members.email,
        coalesce((select bool_and(customers.has_marketing_consent) from marts.dim_customers as customers
                  where customers.customer_key = members.customer_key), false) as has_marketing_consent
    from activation.audience_members as members
    """)


def ensure_raw_views(conn: psycopg.Connection, sources: Iterable[Source], rules: QualityRules,
                     timezone: str) -> None:
    """(Re)create the views of the raw suites; one transaction."""
    sources = list(sources)
    with conn.transaction():
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(SCHEMA)))
        for source in sources:
            _replace(conn, loaded_view(source), _loaded_rows(source, timezone))
        _replace(conn, "raw_source_days", _source_days(sources, rules, timezone))


def ensure_mart_views(conn: psycopg.Connection, rules: QualityRules) -> None:
    """(Re)create the views of the mart and audience suites; one transaction."""
    with conn.transaction():
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(SCHEMA)))
        _replace(conn, "segment_size_drift", _segment_sizes(rules))
        _replace(conn, "audience_consent", AUDIENCE_CONSENT)
