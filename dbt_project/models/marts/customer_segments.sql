with

transactions as (

    select * from {{ ref('fct_transactions') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

lifecycle_stages as (

    select * from {{ ref('lifecycle_stages') }}

),

-- anonymous tickets have no customer; lines after the as-of moment (a backfill) do not count yet
customer_purchases as (

    select
        customer_key,
        min(transacted_at) as first_purchase_at,
        max(transacted_at) as last_purchase_at,
        count(distinct transacted_on) as purchase_days,
        sum(net_amount) as net_spend

    from transactions
    where customer_key is not null and transacted_at < {{ as_of_at() }}
    group by customer_key

),

customer_recency as (

    select
        customer_purchases.*,
        {{ days_between('last_purchase_at', as_of_at()) }} as recency_days

    from customer_purchases

),

customer_stages as (

    select
        customer_recency.*,
        lifecycle_stages.lifecycle_stage

    from customer_recency
    inner join lifecycle_stages
        on customer_recency.recency_days
            between lifecycle_stages.min_recency_days and lifecycle_stages.max_recency_days

),

final as (

    select
        cast(customer_stages.customer_key as varchar) as customer_key,
        {{ local_date(as_of_at()) }} as as_of_date,
        cast(customers.email as varchar) as email,
        customer_stages.first_purchase_at,
        customer_stages.last_purchase_at,
        cast(customer_stages.purchase_days as integer) as purchase_days,
        cast(customer_stages.net_spend as numeric(14, 2)) as net_spend,
        customer_stages.recency_days,
        customer_stages.lifecycle_stage,
        customers.email is not null and coalesce(customers.has_marketing_consent, false)
            as has_marketing_consent

    from customer_stages
    left join customers
        on customer_stages.customer_key = customers.customer_key

)

select * from final
