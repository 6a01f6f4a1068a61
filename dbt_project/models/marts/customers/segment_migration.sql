-- How many customers moved from each segment to each other between the previous snapshot in
-- segment_history and the run's date, for the three segmentations (lifecycle stage, RFM
-- segment, value tier). A customer without a row on one of the dates counts as '(none)'.
with

-- not materialized: each use reads only its dates, not a copy of every snapshot kept
segment_history as not materialized (

    select * from {{ ref('segment_history') }}

),

-- the newest snapshot before the run's date (null when there is none): the partitions' keys
-- (as_of_date first) find it without reading the snapshots
dates as (

    select
        {{ local_date(as_of_at()) }} as to_as_of_date,
        max(as_of_date) as from_as_of_date

    from segment_history
    where as_of_date < {{ local_date(as_of_at()) }}

),

-- each snapshot is one partition of segment_history: the run's date is known when the query is
-- planned, the previous one when it starts
previous_snapshot as (

    select * from segment_history
    where as_of_date = (select dates.from_as_of_date from dates)

),

current_snapshot as (

    select * from segment_history
    where as_of_date = {{ local_date(as_of_at()) }}

),

{% set segmentations = ['lifecycle_stage', 'rfm_segment', 'value_tier'] %}

-- the two snapshots joined once by customer and counted by the customers' moves in the three
-- segmentations at once: a few hundred combinations, not a row per customer to read again
move_combinations as (

    select
        {% for segmentation in segmentations %}
        coalesce(previous_snapshot.{{ segmentation }}, '(none)') as from_{{ segmentation }},
        coalesce(current_snapshot.{{ segmentation }}, '(none)') as to_{{ segmentation }},
        {% endfor %}
        count(*) as customers

    from previous_snapshot
    full outer join current_snapshot
        on previous_snapshot.customer_key = current_snapshot.customer_key
    group by
        {% for segmentation in segmentations %}
        from_{{ segmentation }},
        to_{{ segmentation }}{{ ',' if not loop.last }}
        {% endfor %}

),

-- summed per segmentation: a few dozen (from, to) pairs each
moves as (

    {% for segmentation in segmentations %}
    select
        '{{ segmentation }}' as segmentation,
        from_{{ segmentation }} as from_segment,
        to_{{ segmentation }} as to_segment,
        sum(customers) as customers

    from move_combinations
    group by from_{{ segmentation }}, to_{{ segmentation }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

final as (

    select
        dates.from_as_of_date,
        dates.to_as_of_date,
        cast(moves.segmentation as varchar) as segmentation,
        cast(moves.from_segment as varchar) as from_segment,
        cast(moves.to_segment as varchar) as to_segment,
        cast(moves.customers as integer) as customers

    from moves
    cross join dates
    where dates.from_as_of_date is not null

)

select * from final
