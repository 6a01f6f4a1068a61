{{ config(materialized='table') }}

-- Each customer's transaction totals as of the run's date, in one pass over fct_transactions:
-- what customer_rfmt scores (the whole history), what customer_value prices (the 12 months
-- before the as-of moment) and the purchases dim_customers shows (first, latest, channels), for
-- every customer with a purchase before the as-of moment.
with

transactions as (

    select * from {{ ref('fct_transactions') }}

),

-- lines before the as-of moment (after a backfill, later lines are in the table too); the start
-- of the 12 months in a scalar subquery, computed once (timestamp plus months is not constant
-- folded: inline it would be computed again for every line). Not materialized: each key range
-- below reads its own lines.
customer_lines as not materialized (

    select
        transactions.*,
        transacted_at >= (select {{ dbt.dateadd('month', -12, as_of_at()) }})
            as is_in_last_12_months

    from transactions
    where customer_key is not null and transacted_at < {{ as_of_at() }}

),

-- grouped by the key's bytes (macro byte_order): read in that order from fct_transactions'
-- index, no sort. Each aggregate reads only the lines its filter keeps (a filter rather than a
-- case inside the aggregate: the other lines cost no call, which halves the time of this pass at
-- scale). A line of an unknown product has no cost: it counts no margin (the conservative
-- reading). The customers are split into var('transaction_totals_key_ranges') key ranges, one
-- aggregation each, all appended: PostgreSQL runs them side by side, one per parallel worker
-- (the distinct counts keep it from splitting one aggregation), each reading its part of the
-- index.
{%- set key_bounds = customer_key_range_bounds(var('transaction_totals_key_ranges')) %}
customer_totals as (
    {% for range_index in range(key_bounds | length + 1) %}
    select
        {{ byte_order('customer_key') }} as customer_key,
        min(transacted_at) filter (where not is_return) as first_purchase_at,
        max(transacted_at) filter (where not is_return) as last_purchase_at,
        count(distinct transacted_on) filter (where not is_return) as purchase_days,
        bool_or(channel = 'store') filter (where not is_return) as has_store_purchases,
        bool_or(channel = 'online') filter (where not is_return) as has_online_purchases,
        sum(net_amount) as monetary_total,
        sum(net_amount) filter (where is_in_last_12_months and not is_return) as revenue_12m,
        sum(discount_amount) filter (where is_in_last_12_months and not is_return)
            as discounts_12m,
        -sum(net_amount) filter (where is_in_last_12_months and is_return) as returns_12m,
        sum(margin_amount) filter (where is_in_last_12_months) as margin_12m,
        count(distinct transaction_id)
            filter (where is_in_last_12_months and not is_return and channel = 'store')
            as store_orders_12m,
        count(distinct transaction_id)
            filter (where is_in_last_12_months and not is_return and channel = 'online')
            as online_orders_12m,
        count(distinct transaction_id) filter (where is_in_last_12_months and is_return)
            as returns_count_12m

    from customer_lines
    where true
        {%- if not loop.first %}
        and {{ byte_order('customer_key') }} >= '{{ key_bounds[range_index - 1] }}'
        {%- endif %}
        {%- if not loop.last %}
        and {{ byte_order('customer_key') }} < '{{ key_bounds[range_index] }}'
        {%- endif %}
    group by {{ byte_order('customer_key') }}
    {% if not loop.last %}
    union all
    {% endif %}
    {%- endfor %}
),

-- a customer whose lines are all returns (of purchases made as someone else) has no purchase
final as (

    select
        cast({{ default_order('customer_key') }} as varchar) as customer_key,
        first_purchase_at,
        last_purchase_at,
        cast({{ days_between('last_purchase_at', as_of_at()) }} as integer) as recency_days,
        cast({{ days_between('first_purchase_at', as_of_at()) }} as integer) as tenure_days,
        cast(purchase_days as integer) as purchase_days,
        has_store_purchases,
        has_online_purchases,
        cast(monetary_total as numeric(14, 2)) as monetary_total,
        cast(coalesce(revenue_12m, 0) as numeric(14, 2)) as revenue_12m,
        cast(coalesce(discounts_12m, 0) as numeric(14, 2)) as discounts_12m,
        cast(coalesce(returns_12m, 0) as numeric(14, 2)) as returns_12m,
        cast(coalesce(margin_12m, 0) as numeric(14, 2)) as margin_12m,
        cast(store_orders_12m as integer) as store_orders_12m,
        cast(online_orders_12m as integer) as online_orders_12m,
        cast(returns_count_12m as integer) as returns_count_12m

    from customer_totals
    where purchase_days > 0

)

select * from final
