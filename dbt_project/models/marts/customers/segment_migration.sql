-- How many customers moved from each segment to each other between the previous snapshot in
-- segment_history and the run's date, for the three segmentations (lifecycle stage, RFM
-- segment, value tier). A customer without a row on one of the dates counts as '(none)'.
with

-- not materialized: each use reads only its dates (through the index on as_of_date), not a copy
-- of every snapshot kept
segment_history as not materialized (

    select * from {{ ref('segment_history') }}

),

dates as (

    select
        {{ local_date(as_of_at()) }} as to_as_of_date,
        max(case when as_of_date < {{ local_date(as_of_at()) }} then as_of_date end) as from_as_of_date

    from segment_history

),

previous_snapshot as (

    select segment_history.*
    from segment_history
    inner join dates
        on segment_history.as_of_date = dates.from_as_of_date

),

current_snapshot as (

    select segment_history.*
    from segment_history
    inner join dates
        on segment_history.as_of_date = dates.to_as_of_date

),

{% set segmentations = ['lifecycle_stage', 'rfm_segment', 'value_tier'] %}

-- the two snapshots joined once by customer: each customer's move in the three segmentations
customer_moves as (

    select
        {% for segmentation in segmentations %}
        coalesce(previous_snapshot.{{ segmentation }}, '(none)') as from_{{ segmentation }},
        coalesce(current_snapshot.{{ segmentation }}, '(none)') as to_{{ segmentation }}
        {%- if not loop.last %},{% endif %}
        {% endfor %}

    from previous_snapshot
    full outer join current_snapshot
        on previous_snapshot.customer_key = current_snapshot.customer_key

),

move_combinations as (

    select
        {% for segmentation in segmentations %}
        from_{{ segmentation }},
        to_{{ segmentation }},
        {% endfor %}
        count(*) as customers

    from customer_moves
    group by
        {% for segmentation in segmentations %}
        from_{{ segmentation }}, to_{{ segmentation }}{% if not loop.last %},{% endif %}
        {% endfor %}

),

moves as (

    {% for segmentation in segmentations %}
    select
        '{{ segmentation }}' as segmentation,
        from_{{ segmentation }} as from_segment,
        to_{{ segmentation }} as to_segment,
        customers

    from move_combinations
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

final as (

    select
        dates.from_as_of_date,
        dates.to_as_of_date,
        cast(segmentation as varchar) as segmentation,
        cast(from_segment as varchar) as from_segment,
        cast(to_segment as varchar) as to_segment,
        cast(sum(customers) as integer) as customers

    from moves
    cross join dates
    where dates.from_as_of_date is not null
    group by dates.from_as_of_date, dates.to_as_of_date, segmentation, from_segment, to_segment

)

select * from final
