{{ config(materialized='table') }}

-- One row for the run's as-of date: quantiles of what the customers are worth against the
-- previous as-of date that has them. The 12-month net value (monetary) of each customer in
-- segment_history, the predicted CLV of each customer in the CLV fit's predictions, and the
-- spread of p_alive across repeat customers (one-off buyers always have p_alive 1). A ratio is
-- left null (not judged) without an earlier date, with fewer than var
-- quality_drift_min_customers customers on either date, or when the earlier quantile is not
-- above zero.
{%- set as_of_date = local_date(as_of_at()) %}

with

segment_history as (

    select * from {{ ref('segment_history') }}

),

customer_clv as (

    select * from {{ source('clv', 'customer_clv') }}

),

monetary_dates as (

    select
        max(as_of_date) filter (where as_of_date = {{ as_of_date }}) as as_of_date,
        max(as_of_date) filter (where as_of_date < {{ as_of_date }}) as previous_as_of_date

    from segment_history
    where as_of_date <= {{ as_of_date }}

),

clv_dates as (

    select
        max(as_of_date) filter (where as_of_date = {{ as_of_date }}) as as_of_date,
        max(as_of_date) filter (where as_of_date < {{ as_of_date }}) as previous_as_of_date

    from customer_clv
    where as_of_date <= {{ as_of_date }}

),

monetary_quantiles as (

    select
        segment_history.as_of_date,
        count(*) as customers,
        percentile_cont(0.5) within group (order by segment_history.net_value_12m) as p50,
        percentile_cont(0.9) within group (order by segment_history.net_value_12m) as p90

    from segment_history
    inner join monetary_dates
        on
            segment_history.as_of_date
            in (monetary_dates.as_of_date, monetary_dates.previous_as_of_date)
    group by segment_history.as_of_date

),

clv_quantiles as (

    select
        customer_clv.as_of_date,
        count(*) as customers,
        percentile_cont(0.5) within group (order by customer_clv.predicted_clv) as p50,
        percentile_cont(0.9) within group (order by customer_clv.predicted_clv) as p90,
        percentile_cont(0.1) within group (
            order by customer_clv.p_alive
        ) filter (where customer_clv.frequency > 0) as repeat_p_alive_p10,
        percentile_cont(0.9) within group (
            order by customer_clv.p_alive
        ) filter (where customer_clv.frequency > 0) as repeat_p_alive_p90

    from customer_clv
    inner join clv_dates
        on customer_clv.as_of_date in (clv_dates.as_of_date, clv_dates.previous_as_of_date)
    group by customer_clv.as_of_date

),

final as (

    select
        {{ as_of_date }} as as_of_date,
        monetary_dates.previous_as_of_date as previous_monetary_as_of_date,
        monetary_now.customers as monetary_customers,
        round(monetary_now.p50::numeric, 2) as net_value_12m_p50,
        round(monetary_now.p90::numeric, 2) as net_value_12m_p90,
        round(monetary_before.p50::numeric, 2) as previous_net_value_12m_p50,
        round(monetary_before.p90::numeric, 2) as previous_net_value_12m_p90,
        {{ drift_ratio('monetary_now', 'monetary_before', 'p50') }} as net_value_12m_p50_ratio,
        {{ drift_ratio('monetary_now', 'monetary_before', 'p90') }} as net_value_12m_p90_ratio,
        clv_dates.previous_as_of_date as previous_clv_as_of_date,
        clv_now.customers as clv_customers,
        round(clv_now.p50::numeric, 2) as predicted_clv_p50,
        round(clv_now.p90::numeric, 2) as predicted_clv_p90,
        round(clv_before.p50::numeric, 2) as previous_predicted_clv_p50,
        round(clv_before.p90::numeric, 2) as previous_predicted_clv_p90,
        {{ drift_ratio('clv_now', 'clv_before', 'p50') }} as predicted_clv_p50_ratio,
        {{ drift_ratio('clv_now', 'clv_before', 'p90') }} as predicted_clv_p90_ratio,
        round(
            (clv_now.repeat_p_alive_p90 - clv_now.repeat_p_alive_p10)::numeric, 4
        ) as repeat_p_alive_spread

    from monetary_dates
    cross join clv_dates
    left join monetary_quantiles as monetary_now
        on monetary_dates.as_of_date = monetary_now.as_of_date
    left join monetary_quantiles as monetary_before
        on monetary_dates.previous_as_of_date = monetary_before.as_of_date
    left join clv_quantiles as clv_now
        on clv_dates.as_of_date = clv_now.as_of_date
    left join clv_quantiles as clv_before
        on clv_dates.previous_as_of_date = clv_before.as_of_date

)

select * from final
