-- How many customers moved from each segment to each other between the previous snapshot in
-- segment_history and the run's date, for the three segmentations (lifecycle stage, RFM
-- segment, value tier). A customer without a row on one of the dates counts as '(none)'.
with

segment_history as (

    select * from {{ ref('segment_history') }}

),

dates as (

    select
        {{ local_date(as_of_at()) }} as to_as_of_date,
        max(case when as_of_date < {{ local_date(as_of_at()) }} then as_of_date end) as from_as_of_date

    from segment_history

),

snapshots as (

    select segment_history.*
    from segment_history
    inner join dates
        on segment_history.as_of_date in (dates.from_as_of_date, dates.to_as_of_date)

),

{% set segmentations = ['lifecycle_stage', 'rfm_segment', 'value_tier'] %}

customer_segment_values as (

    {% for segmentation in segmentations %}
    select
        as_of_date,
        customer_key,
        '{{ segmentation }}' as segmentation,
        {{ segmentation }} as segment

    from snapshots
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

previous_segments as (

    select customer_segment_values.*
    from customer_segment_values
    inner join dates
        on customer_segment_values.as_of_date = dates.from_as_of_date

),

current_segments as (

    select customer_segment_values.*
    from customer_segment_values
    inner join dates
        on customer_segment_values.as_of_date = dates.to_as_of_date

),

moves as (

    select
        coalesce(previous_segments.segmentation, current_segments.segmentation) as segmentation,
        coalesce(previous_segments.segment, '(none)') as from_segment,
        coalesce(current_segments.segment, '(none)') as to_segment

    from previous_segments
    full outer join current_segments
        on previous_segments.customer_key = current_segments.customer_key
        and previous_segments.segmentation = current_segments.segmentation

),

final as (

    select
        dates.from_as_of_date,
        dates.to_as_of_date,
        cast(segmentation as varchar) as segmentation,
        cast(from_segment as varchar) as from_segment,
        cast(to_segment as varchar) as to_segment,
        cast(count(*) as integer) as customers

    from moves
    cross join dates
    where dates.from_as_of_date is not null
    group by dates.from_as_of_date, dates.to_as_of_date, segmentation, from_segment, to_segment

)

select * from final
