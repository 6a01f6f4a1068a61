-- One row per customer with a purchase, as of the run's date: what campaigns select from. Joins
-- RFMT (scores and RFM segment), current value (value tier), the lifecycle stage (seed
-- lifecycle_stages), loyalty tier and marketing consent.
with

customer_rfmt as (

    select * from {{ ref('customer_rfmt') }}

),

customer_value as (

    select * from {{ ref('customer_value') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

lifecycle_stages as (

    select * from {{ ref('lifecycle_stages') }}

),

final as (

    select
        cast(customer_rfmt.customer_key as varchar) as customer_key,
        customer_rfmt.as_of_date,
        cast(customers.email as varchar) as email,
        customer_rfmt.first_purchase_at,
        customer_rfmt.last_purchase_at,
        cast(customer_rfmt.frequency + 1 as integer) as purchase_days,
        customer_rfmt.monetary_total as net_spend,
        customer_rfmt.recency_days,
        customer_rfmt.tenure_days,
        cast(stage_matches.lifecycle_stage as varchar) as lifecycle_stage,
        customer_rfmt.rfmt_score,
        customer_rfmt.rfm_segment,
        customer_value.net_value_12m,
        customer_value.value_tier,
        coalesce(customers.is_loyalty_member, false) as is_loyalty_member,
        cast(customers.loyalty_tier as varchar) as loyalty_tier,
        customers.email is not null and coalesce(customers.has_marketing_consent, false)
            as has_marketing_consent

    from customer_rfmt
    inner join customer_value
        on customer_rfmt.customer_key = customer_value.customer_key
    -- the first stage by sort_order whose bands hold the customer (a handful of seed rows)
    left join lateral (
        select lifecycle_stages.lifecycle_stage

        from lifecycle_stages
        where customer_rfmt.recency_days
                between lifecycle_stages.min_recency_days and lifecycle_stages.max_recency_days
            and (lifecycle_stages.max_tenure_days is null
                or customer_rfmt.tenure_days <= lifecycle_stages.max_tenure_days)
        order by lifecycle_stages.sort_order
        limit 1
    ) as stage_matches on true
    left join customers
        on customer_rfmt.customer_key = customers.customer_key

)

select * from final
