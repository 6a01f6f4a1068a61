-- Up-sell audience: customers on course to become high performers (a value tier of var
-- upsell_value_tiers) who have a next best category to be offered. Every such customer, consent
-- or not.
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

upsell_customers as (

    select * from audience_profiles
    where value_tier in ({{ quoted_list(var('upsell_value_tiers')) }})
        and next_best_category is not null

),

final as (

    select
        upsell_customers.customer_key,
        upsell_customers.as_of_date,
        upsell_customers.email,
        upsell_customers.phone,
        upsell_customers.first_name,
        upsell_customers.last_name,
        upsell_customers.has_marketing_consent,
        cast(audience_offer.offer_code as varchar) as offer_code,
        cast(audience_offer.discount_percent as numeric(5, 2)) as offer_discount_percent,
        cast(audience_offer.channel as varchar) as offer_channel,
        upsell_customers.next_best_category,
        upsell_customers.loyalty_tier,
        upsell_customers.points_balance,
        upsell_customers.predicted_value_band,
        upsell_customers.value_tier

    from upsell_customers
    -- a missing offer leaves offer_code null, which the contract rejects
    left join audience_offer on true

)

select * from final
