-- Onboarding audience: customers in a lifecycle stage of var onboarding_lifecycle_stages (new:
-- a first purchase within the last days), to welcome and bring back for a second purchase.
-- Every such customer, consent or not.
with

audience_profiles as (

    select * from {{ ref('int_customers__audience_profile') }}

),

audience_offers as (

    select * from {{ ref('audience_offers') }}

),

-- this audience's offer (seed audience_offers, by the model's name without aud_)
audience_offer as (

    select * from audience_offers
    where audience = '{{ audience_name() }}'

),

new_customers as (

    select * from audience_profiles
    where lifecycle_stage in ({{ quoted_list(var('onboarding_lifecycle_stages')) }})

),

final as (

    select
        new_customers.customer_key,
        new_customers.as_of_date,
        new_customers.email,
        new_customers.phone,
        new_customers.first_name,
        new_customers.last_name,
        new_customers.has_marketing_consent,
        cast(audience_offer.offer_code as varchar) as offer_code,
        cast(audience_offer.discount_percent as numeric(5, 2)) as offer_discount_percent,
        cast(audience_offer.channel as varchar) as offer_channel,
        new_customers.next_best_category,
        new_customers.loyalty_tier,
        new_customers.points_balance,
        new_customers.predicted_value_band,
        new_customers.lifecycle_stage,
        new_customers.first_purchase_on

    from new_customers
    -- a missing offer leaves offer_code null, which the contract rejects
    left join audience_offer on true

)

select * from final
