{{ config(materialized='table') }}

-- Customers per segment of each segmentation on the run's as-of date against the previous as-of
-- date kept in segment_history. The ratio is left null (not judged) for a segment with fewer
-- than var quality_drift_min_customers customers on both dates.
{%- set segmentations = ['lifecycle_stage', 'rfm_segment', 'value_tier'] %}

with

segment_history as (

    select * from {{ ref('segment_history') }}

),

run_dates as (

    select
        {{ local_date(as_of_at()) }} as as_of_date,
        max(as_of_date) filter (
            where as_of_date < {{ local_date(as_of_at()) }}
        ) as previous_as_of_date

    from segment_history

),

segment_sizes as (
{% for segmentation in segmentations %}
    select
        segment_history.as_of_date,
        '{{ segmentation }}' as segmentation,
        segment_history.{{ segmentation }} as segment,
        count(*) as customers

    from segment_history
    inner join run_dates
        on segment_history.as_of_date in (run_dates.as_of_date, run_dates.previous_as_of_date)
    group by segment_history.as_of_date, segment_history.{{ segmentation }}
{% if not loop.last %}
    union all
{% endif %}
{%- endfor %}
),

compared_segments as (

    select distinct
        segment_sizes.segmentation,
        segment_sizes.segment

    from segment_sizes

),

final as (

    select
        run_dates.as_of_date,
        compared_segments.segmentation,
        compared_segments.segment,
        coalesce(on_date.customers, 0) as customers,
        run_dates.previous_as_of_date,
        coalesce(on_previous_date.customers, 0) as previous_customers,
        case
            when
                greatest(on_date.customers, on_previous_date.customers)
                >= {{ var('quality_drift_min_customers') }}
                then round(
                    coalesce(on_date.customers, 0)::numeric
                    / nullif(coalesce(on_previous_date.customers, 0), 0), 4
                )
        end as size_ratio

    from compared_segments
    cross join run_dates
    left join segment_sizes as on_date
        on
            compared_segments.segmentation = on_date.segmentation
            and compared_segments.segment = on_date.segment
            and run_dates.as_of_date = on_date.as_of_date
    left join segment_sizes as on_previous_date
        on
            compared_segments.segmentation = on_previous_date.segmentation
            and compared_segments.segment = on_previous_date.segment
            and run_dates.previous_as_of_date = on_previous_date.as_of_date

)

select * from final
