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
        cast(coalesce(customer_rfmt.customer_key, customer_value.customer_key) as varchar)
            as customer_key,
        customer_rfmt.as_of_date,
        cast(customers.email as varchar) as email,
        customer_rfmt.first_purchase_at,
        customer_rfmt.last_purchase_at,
        cast(customer_rfmt.frequency + 1 as integer) as purchase_days,
        customer_rfmt.monetary_total as net_spend,
        customer_rfmt.recency_days,
        customer_rfmt.tenure_days,
        cast(case
            when stage_steps.max_tenure_days[tenure_steps.step] is null
                or customer_rfmt.tenure_days <= stage_steps.max_tenure_days[tenure_steps.step]
                then stage_steps.lifecycle_stages[tenure_steps.step]
        end as varchar) as lifecycle_stage,
        customer_rfmt.rfmt_score,
        customer_rfmt.rfm_segment,
        customer_value.net_value_12m,
        customer_value.value_tier,
        customers.is_loyalty_member,
        cast(customers.loyalty_tier as varchar) as loyalty_tier,
        customers.email is not null and coalesce(customers.has_marketing_consent, false)
            as has_marketing_consent

    -- full join: a customer missing from either mart gets nulls the contract rejects, as does
    -- one missing from dim_customers (is_loyalty_member, never null there); in a build the
    -- relationships tests of customer_rfmt and customer_value stop it first, naming which
    from customer_rfmt
    full outer join customer_value
        on customer_rfmt.customer_key = customer_value.customer_key
    -- the stages whose recency band holds the customer's recency, as steps over tenure in
    -- sort_order: a stage applies from the tenure after the highest limit of the stages before
    -- it up to its own limit (none when an earlier stage covers all of it), so the first stage
    -- whose bands hold the customer is the step holding their tenure. It reads the recency
    -- alone: PostgreSQL computes it once per distinct recency (Memoize), not once per customer.
    left join lateral (
        select
            array_agg(lifecycle_stage order by sort_order) as lifecycle_stages,
            array_agg(min_tenure_days order by sort_order) as min_tenure_days,
            array_agg(max_tenure_days order by sort_order) as max_tenure_days

        from (
            select
                lifecycle_stages.lifecycle_stage,
                lifecycle_stages.sort_order,
                coalesce(max(lifecycle_stages.max_tenure_days) over earlier_stages + 1, 0)
                    as min_tenure_days,
                lifecycle_stages.max_tenure_days,
                coalesce(bool_or(lifecycle_stages.max_tenure_days is null) over earlier_stages,
                         false) as is_covered_by_earlier_stages

            from lifecycle_stages
            where customer_rfmt.recency_days
                between lifecycle_stages.min_recency_days and lifecycle_stages.max_recency_days
            window earlier_stages as (
                order by lifecycle_stages.sort_order
                rows between unbounded preceding and 1 preceding
            )
        ) as band_stages
        where not is_covered_by_earlier_stages
            and (max_tenure_days is null or min_tenure_days <= max_tenure_days)
    ) as stage_steps on true
    -- the step holding the tenure (0 when the recency is in no band): the steps' lower bounds
    -- ascend, so width_bucket finds it by bisection
    cross join lateral (
        select width_bucket(customer_rfmt.tenure_days, stage_steps.min_tenure_days) as step
    ) as tenure_steps
    left join customers
        on customer_rfmt.customer_key = customers.customer_key

)

select * from final
