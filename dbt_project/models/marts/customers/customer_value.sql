-- Current profitability per customer over the 12 months before the as-of moment: revenue, margin,
-- discounts, returns, cost to serve (seed cost_to_serve), net value, and the value tier, whose
-- high potential is the predicted CLV's top share when the CLV fit ran for the date (a run rate
-- heuristic before that).
with

customer_totals as (

    select * from {{ ref('int_customers__transaction_totals') }}

),

source_keys as (

    select * from {{ ref('customer_source_keys') }}

),

cases as (

    select * from {{ ref('stg_crm__cases') }}

),

cost_to_serve as (

    select * from {{ ref('cost_to_serve') }}

),

customer_clv as (

    select * from {{ source('clv', 'customer_clv') }}

),

high_potential_thresholds as (

    select * from {{ ref('int_customers__high_potential_thresholds') }}

),

window_cases as (

    select
        source_keys.customer_key,
        cases.case_id,
        cases.compensation_amount

    from cases
    inner join source_keys
        on source_keys.source = 'crm'
        and cases.contact_id = source_keys.source_id
    where cases.opened_at >= {{ dbt.dateadd('month', -12, as_of_at()) }}
        and cases.opened_at < {{ as_of_at() }}

),

customer_service as (

    select
        customer_key,
        count(*) as service_contacts_12m,
        sum(coalesce(compensation_amount, 0)) as compensation_12m

    from window_cases
    group by customer_key

),

unit_costs as (

    select
        {% for driver in ['store_order', 'online_order', 'return', 'service_contact',
                          'marketing_year'] %}
        max(case when cost_driver = '{{ driver }}' then unit_cost end) as {{ driver }}_cost
        {%- if not loop.last %},{% endif %}
        {% endfor %}

    from cost_to_serve

),

customer_activity as (

    select
        customer_totals.customer_key,
        customer_totals.tenure_days,
        customer_totals.revenue_12m,
        customer_totals.discounts_12m,
        customer_totals.returns_12m,
        customer_totals.margin_12m,
        customer_totals.store_orders_12m,
        customer_totals.online_orders_12m,
        customer_totals.returns_count_12m,
        coalesce(customer_service.service_contacts_12m, 0) as service_contacts_12m,
        coalesce(customer_service.compensation_12m, 0) as compensation_12m

    from customer_totals
    left join customer_service
        on customer_totals.customer_key = customer_service.customer_key

),

-- marketing is a cost of the customers who bought in the window. `offset 0` keeps PostgreSQL
-- from merging this query into the ones below: the cost is computed once per customer, not again
-- in every expression that uses it (net value, run rate), and the rows are not written aside
-- as a materialized CTE's would be (hence no order by: AM09 does not apply).
customer_costs as (

    select
        customer_activity.*,
        customer_activity.store_orders_12m * unit_costs.store_order_cost
            + customer_activity.online_orders_12m * unit_costs.online_order_cost
            + customer_activity.returns_count_12m * unit_costs.return_cost
            + customer_activity.service_contacts_12m * unit_costs.service_contact_cost
            + case
                when customer_activity.store_orders_12m + customer_activity.online_orders_12m > 0
                    then unit_costs.marketing_year_cost
                else 0
            end
            + customer_activity.compensation_12m as cost_to_serve_12m

    from customer_activity
    cross join unit_costs
    offset 0  -- noqa: AM09

),

customer_net_values as (

    select
        customer_costs.*,
        margin_12m - cost_to_serve_12m as net_value_12m,
        -- a customer younger than a year, at the pace of their first months
        (margin_12m - cost_to_serve_12m) * 365.0 / least(tenure_days + 1, 365) as net_value_run_rate

    from customer_costs

),

-- high performers: the top share of customers by net value (rank() ties), above zero; macro
-- top_share_threshold gives the lowest net value among them, so a customer is one when their
-- net value reaches it
high_performer_thresholds as (

    {{ top_share_threshold('customer_net_values', 'net_value_12m',
                           var('value_high_performer_top_share')) }}

),

high_performer_flags as (

    select
        customer_net_values.*,
        coalesce(
            customer_net_values.net_value_12m >= high_performer_thresholds.threshold_value, false
        ) as is_high_performer,
        high_performer_thresholds.threshold_value as high_performer_threshold

    from customer_net_values
    cross join high_performer_thresholds

),

-- the CLV fit's predictions for the run's date: none when it has not run for it, or failed
predictions_of_the_day as (

    select
        customer_key,
        predicted_clv
    from customer_clv
    where as_of_date = {{ local_date(as_of_at()) }}

),

-- high potential: the top share by predicted CLV (above zero: a prediction reaching the
-- date's threshold) where the customer has a prediction; else a net value run rate reaching
-- the lowest high performer's net value
high_potential_flags as (

    select
        high_performer_flags.*,
        predictions_of_the_day.predicted_clv,
        predictions_of_the_day.customer_key is not null as has_predicted_clv,
        case
            when predictions_of_the_day.customer_key is not null
                then coalesce(
                    predictions_of_the_day.predicted_clv
                        >= high_potential_thresholds.min_high_potential_predicted_clv,
                    false
                )
            else high_performer_flags.net_value_run_rate
                >= high_performer_flags.high_performer_threshold
        end as is_high_potential

    from high_performer_flags
    cross join high_potential_thresholds
    left join predictions_of_the_day
        on high_performer_flags.customer_key = predictions_of_the_day.customer_key

),

final as (

    select
        cast(high_potential_flags.customer_key as varchar) as customer_key,
        {{ local_date(as_of_at()) }} as as_of_date,
        cast(high_potential_flags.revenue_12m as numeric(14, 2)) as revenue_12m,
        cast(high_potential_flags.discounts_12m as numeric(14, 2)) as discounts_12m,
        cast(high_potential_flags.returns_12m as numeric(14, 2)) as returns_12m,
        cast(high_potential_flags.margin_12m as numeric(14, 2)) as margin_12m,
        cast(high_potential_flags.store_orders_12m as integer) as store_orders_12m,
        cast(high_potential_flags.online_orders_12m as integer) as online_orders_12m,
        cast(high_potential_flags.returns_count_12m as integer) as returns_count_12m,
        cast(high_potential_flags.service_contacts_12m as integer) as service_contacts_12m,
        cast(high_potential_flags.compensation_12m as numeric(14, 2)) as compensation_12m,
        cast(high_potential_flags.cost_to_serve_12m as numeric(14, 2)) as cost_to_serve_12m,
        cast(high_potential_flags.net_value_12m as numeric(14, 2)) as net_value_12m,
        cast(high_potential_flags.net_value_run_rate as numeric(14, 2)) as net_value_run_rate,
        high_potential_flags.is_high_performer,
        cast(high_potential_flags.predicted_clv as numeric(14, 2)) as predicted_clv,
        cast(case
            when high_potential_flags.is_high_performer then 'high_performer'
            when high_potential_flags.net_value_12m < 0 then 'below_zero'
            when high_potential_flags.is_high_potential then 'high_potential'
            else 'standard'
        end as varchar) as value_tier,
        cast(case
            when high_potential_flags.has_predicted_clv then 'predicted_clv'
            else 'run_rate_heuristic'
        end as varchar) as value_tier_basis

    from high_potential_flags

)

select * from final
