-- Per source and run (as-of date): the rows its batches read and quarantined, the batches held
-- (snapshots the loader would not apply), the expected daily files missing (by severity), the
-- share quarantined, and the rows of the interval's day against the median of the previous days
-- of the same source. A dated file's rows count for its day (raw._load_audit); a source read by
-- a cursor has no daily files: its rows count for the local day of a column
-- (var quality_volume_day_columns). The share is judged only on batches of at least
-- var quality_min_rows_for_share rows, the volume only against enough history (the other
-- quality_volume_* vars): else null, which the suites do not judge.
-- A table, not a view like the other quality models: the suite raw_batches asks it one query
-- per expectation (and Great Expectations one more to list its dates), and each would count
-- the cursor sources' rows by day over their whole history again.
{{ config(materialized='table') }}
{%- set day_columns = var('quality_volume_day_columns') %}

with

load_audit as (

    select * from {{ source('loader', 'load_audit') }}

),

missing_files as (

    select * from {{ source('loader', 'missing_files') }}

),
{% for day_column in day_columns %}
{{ day_column.loader_source }}_rows as (

    select * from {{ source(day_column.dbt_source, day_column.table) }}

),
{% endfor %}
audited_runs as (

    select
        source,
        {{ local_date('interval_end') }} as as_of_date,
        sum(rows_read) as rows_read,
        sum(rows_quarantined) as rows_quarantined,
        count(*) filter (where held_reason is not null) as held_batches

    from load_audit
    group by source, {{ local_date('interval_end') }}

),

missing_file_runs as (

    select
        source,
        {{ local_date('interval_end') }} as as_of_date,
        count(*) filter (where severity = 'error') as missing_files_error,
        count(*) filter (where severity = 'warning') as missing_files_warning

    from missing_files
    group by source, {{ local_date('interval_end') }}

),

source_runs as (

    select
        source,
        as_of_date
    from audited_runs
    union
    select
        source,
        as_of_date
    from missing_file_runs

),

file_day_rows as (

    select
        source,
        file_day as day,
        sum(rows_read) as day_rows

    from load_audit
    where file_day is not null
    group by source, file_day

),

cursor_day_rows as (
{%- if day_columns %}
{%- for day_column in day_columns %}

    select
        '{{ day_column.loader_source }}' as source,
        {{ local_date(day_column.day_column) }} as day,
        count(*) as day_rows

    from {{ day_column.loader_source }}_rows
    where {{ day_column.day_column }} is not null
    group by {{ local_date(day_column.day_column) }}
    {%- if not loop.last %}

    union all
    {%- endif %}
{%- endfor %}
{%- else %}

    select
        cast(null as text) as source,
        cast(null as date) as day,
        cast(null as bigint) as day_rows

    where false
{%- endif %}

),

day_rows as (

    select * from file_day_rows
    union all
    select * from cursor_day_rows

),

usual_volumes as (

    select
        source_runs.source,
        source_runs.as_of_date,
        coalesce(interval_day.day_rows, 0) as day_rows,
        history.days as history_days,
        history.median_rows as usual_day_rows

    from source_runs
    left join day_rows as interval_day
        on
            source_runs.source = interval_day.source
            and interval_day.day = source_runs.as_of_date - 1
    cross join lateral (
        select
            count(*) as days,
            percentile_cont(0.5) within group (order by previous_days.day_rows) as median_rows
        from day_rows as previous_days
        where
            previous_days.source = source_runs.source
            and previous_days.day < source_runs.as_of_date - 1
            and previous_days.day
            >= source_runs.as_of_date - 1 - {{ var('quality_volume_history_days') }}
    ) as history

),

final as (

    select
        source_runs.as_of_date,
        source_runs.source,
        coalesce(audited_runs.rows_read, 0) as rows_read,
        coalesce(audited_runs.rows_quarantined, 0) as rows_quarantined,
        coalesce(audited_runs.held_batches, 0) as held_batches,
        coalesce(missing_file_runs.missing_files_error, 0) as missing_files_error,
        coalesce(missing_file_runs.missing_files_warning, 0) as missing_files_warning,
        case
            when audited_runs.rows_read >= {{ var('quality_min_rows_for_share') }}
                then round(
                    cast(audited_runs.rows_quarantined as numeric) / audited_runs.rows_read, 4
                )
        end as quarantined_share,
        usual_volumes.day_rows,
        usual_volumes.history_days,
        usual_volumes.usual_day_rows,
        case
            when
                usual_volumes.history_days >= {{ var('quality_volume_min_history_days') }}
                and usual_volumes.usual_day_rows >= {{ var('quality_volume_min_usual_rows') }}
                then round(
                    cast(usual_volumes.day_rows / usual_volumes.usual_day_rows as numeric), 4
                )
        end as volume_ratio

    from source_runs
    inner join usual_volumes
        on
            source_runs.source = usual_volumes.source
            and source_runs.as_of_date = usual_volumes.as_of_date
    left join audited_runs
        on
            source_runs.source = audited_runs.source
            and source_runs.as_of_date = audited_runs.as_of_date
    left join missing_file_runs
        on
            source_runs.source = missing_file_runs.source
            and source_runs.as_of_date = missing_file_runs.as_of_date

)

select * from final
