{{ config(materialized='table') }}

-- The lowest predicted CLV among the high potential customers of the run's date: the top share
-- (var value_high_potential_top_share) of the CLV fit's predictions for the date, above zero.
-- One row, whatever the predictions (null threshold when there are none). A table of its own:
-- it reads the predictions only, so dbt builds it beside the pass over the transactions rather
-- than inside customer_value, after it.
with

customer_clv as (

    select * from {{ source('clv', 'customer_clv') }}

),

-- the CLV fit's predictions for the run's date: none when it has not run for it, or failed
predictions_of_the_day as (

    select
        customer_key,
        predicted_clv
    from customer_clv
    where as_of_date = {{ local_date(as_of_at()) }}

),

-- macro top_share_threshold: the lowest value among the top share by rank() (ties share it)
predicted_value_thresholds as (

    {{ top_share_threshold('predictions_of_the_day', 'predicted_clv',
                           var('value_high_potential_top_share')) }}

),

final as (

    select
        {{ local_date(as_of_at()) }} as as_of_date,
        cast(threshold_value as numeric(14, 2)) as min_high_potential_predicted_clv

    from predicted_value_thresholds

)

select * from final
