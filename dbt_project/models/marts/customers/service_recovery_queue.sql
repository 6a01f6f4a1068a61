-- Open complaints as of the run's date, in the order front-line staff should act: customers who
-- matter most first (value tier, seed value_tiers), those at risk of leaving before the others
-- (the CLV fit's churn risk band for the date, else the lifecycle stage), then by net value; with
-- the compensation limit of the customer's loyalty tier.
with

cases as (

    select * from {{ ref('stg_crm__cases') }}

),

source_keys as (

    select * from {{ ref('customer_source_keys') }}

),

customer_segments as (

    select * from {{ ref('customer_segments') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

value_tiers as (

    select * from {{ ref('value_tiers') }}

),

tier_privileges as (

    select * from {{ ref('loyalty_tier_privileges') }}

),

customer_clv as (

    select * from {{ source('clv', 'customer_clv') }}

),

-- staging holds each case as of the as-of moment; one resolved after it was open then
open_cases as (

    select * from cases
    where opened_at < {{ as_of_at() }}
        and (resolved_at is null or resolved_at >= {{ as_of_at() }})

),

-- churn risk from the CLV fit of the run's date, for customers with a repeat purchase: BG/NBD
-- holds a one-off buyer alive for sure (p_alive 1), which says nothing of their risk
churn_predictions as (

    select
        customer_key,
        churn_risk,
        churn_risk_band
    from customer_clv
    where as_of_date = {{ local_date(as_of_at()) }}
        and frequency > 0

),

cases_with_customers as (

    select
        open_cases.case_id,
        open_cases.contact_id,
        open_cases.opened_at,
        open_cases.case_channel,
        open_cases.case_reason,
        source_keys.customer_key,
        customer_segments.value_tier,
        customer_segments.lifecycle_stage,
        customer_segments.net_value_12m,
        customers.loyalty_tier,
        coalesce(value_tiers.service_priority, 99) as service_priority,
        churn_predictions.churn_risk,
        case
            when churn_predictions.customer_key is not null
                then churn_predictions.churn_risk_band
                    in ({{ quoted_list(var('service_churn_risk_bands')) }})
            else coalesce(customer_segments.lifecycle_stage
                in ({{ quoted_list(var('service_churn_risk_lifecycle_stages')) }}), false)
        end as is_at_risk_of_churn,
        case
            when churn_predictions.customer_key is not null then 'predicted_clv'
            else 'lifecycle_stage'
        end as churn_risk_basis,
        coalesce(
            tier_privileges.service_compensation_limit,
            {{ var('service_compensation_limit_non_member') }}
        ) as compensation_limit

    from open_cases
    left join source_keys
        on source_keys.source = 'crm'
        and open_cases.contact_id = source_keys.source_id
    left join customer_segments
        on source_keys.customer_key = customer_segments.customer_key
    left join customers
        on source_keys.customer_key = customers.customer_key
    left join value_tiers
        on customer_segments.value_tier = value_tiers.value_tier
    left join tier_privileges
        on customers.loyalty_tier = tier_privileges.tier
    left join churn_predictions
        on source_keys.customer_key = churn_predictions.customer_key

),

final as (

    select
        cast(row_number() over (
            order by service_priority asc, is_at_risk_of_churn desc, net_value_12m desc nulls last,
                opened_at asc, case_id asc
        ) as integer) as queue_position,
        cast(case_id as varchar) as case_id,
        cast(contact_id as varchar) as contact_id,
        cast(customer_key as varchar) as customer_key,
        opened_at,
        cast({{ days_between('opened_at', as_of_at()) }} as integer) as days_open,
        cast(case_channel as varchar) as case_channel,
        cast(case_reason as varchar) as case_reason,
        cast(value_tier as varchar) as value_tier,
        cast(lifecycle_stage as varchar) as lifecycle_stage,
        is_at_risk_of_churn,
        cast(churn_risk as numeric(5, 4)) as churn_risk,
        cast(churn_risk_basis as varchar) as churn_risk_basis,
        cast(net_value_12m as numeric(14, 2)) as net_value_12m,
        cast(loyalty_tier as varchar) as loyalty_tier,
        cast(compensation_limit as numeric(10, 2)) as compensation_limit,
        {{ local_date(as_of_at()) }} as as_of_date

    from cases_with_customers

)

select * from final
