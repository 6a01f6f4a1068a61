with

transactions as (

    select * from {{ ref('fct_transactions') }}

),

customer_emails as (

    select * from {{ ref('int_customer_emails_as_of') }}

),

contacts as (

    select * from {{ ref('int_crm__contacts_as_of') }}

),

lifecycle_stages as (

    select * from {{ ref('lifecycle_stages') }}

),

-- anonymous tickets have no customer
customer_purchases as (

    select
        customer_key,
        min(transacted_at) as first_purchase_at,
        max(transacted_at) as last_purchase_at,
        count(distinct transacted_on) as purchase_days,
        sum(net_amount) as net_spend

    from transactions
    where customer_key is not null
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

-- a contact consents when opted in and not unsubscribed before the as-of moment
contact_consents as (

    select
        normalized_email,
        case
            when has_marketing_consent
                and (unsubscribed_at is null or unsubscribed_at >= {{ as_of_at() }})
                then 1
            else 0
        end as is_consenting

    from contacts
    where normalized_email is not null

),

-- an email may be marketed to only if every contact holding it consents
email_consents as (

    select
        normalized_email,
        min(is_consenting) = 1 as is_consent_unanimous

    from contact_consents
    group by normalized_email

),

final as (

    select
        cast(customer_stages.customer_key as varchar) as customer_key,
        {{ local_date(as_of_at()) }} as as_of_date,
        cast(customer_emails.email as varchar) as email,
        customer_stages.first_purchase_at,
        customer_stages.last_purchase_at,
        cast(customer_stages.purchase_days as integer) as purchase_days,
        cast(customer_stages.net_spend as numeric(14, 2)) as net_spend,
        customer_stages.recency_days,
        customer_stages.lifecycle_stage,
        customer_emails.email is not null
            and coalesce(email_consents.is_consent_unanimous, false)
            as has_marketing_consent

    from customer_stages
    left join customer_emails
        on customer_stages.customer_key = customer_emails.customer_key
    left join email_consents
        on customer_emails.email = email_consents.normalized_email

)

select * from final
