{{
    config(
        materialized='partitioned_snapshot',
        partition_by='as_of_date',
        post_hook=["{{ prune_segment_history() }}"]
    )
}}

-- Each customer's segments as of each run date: a run (or a backfill) of date D replaces exactly
-- the rows of D. Kept: every month-start snapshot (the state at the end of a month) and the
-- daily ones of the last var('segment_history_daily_retention_days') days before the newest.
with

customer_segments as (

    select * from {{ ref('customer_segments') }}

),

final as (

    select
        as_of_date,
        customer_key,
        lifecycle_stage,
        rfm_segment,
        value_tier,
        loyalty_tier,
        has_marketing_consent,
        rfmt_score,
        net_value_12m

    from customer_segments

)

select * from final
