-- Each staged audience member with its customer's marketing consent as dim_customers holds it
-- now: false when the customer key is not there (consent that cannot be read is no consent).
with

audience_members as (

    select * from {{ source('activation', 'audience_members') }}

),

dim_customers as (

    select * from {{ ref('dim_customers') }}

),

final as (

    select
        audience_members.as_of_date,
        audience_members.audience,
        audience_members.customer_key,
        audience_members.email,
        coalesce(dim_customers.has_marketing_consent, false) as has_marketing_consent

    from audience_members
    left join dim_customers
        on audience_members.customer_key = dim_customers.customer_key

)

select * from final
