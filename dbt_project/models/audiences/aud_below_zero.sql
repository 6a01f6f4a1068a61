-- Below-zero audience: customers who cost more than they bring (a value tier of var
-- below_zero_value_tiers), reached by the cheapest channel and without a discount (their offer
-- in seed audience_offers says so). Every such customer, consent or not.
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

below_zero_customers as (

    select * from audience_profiles
    where value_tier in ({{ quoted_list(var('below_zero_value_tiers')) }})

),

final as (

    select
        below_zero_customers.customer_key,
        below_zero_customers.as_of_date,
        below_zero_customers.email,
        below_zero_customers.phone,
        below_zero_customers.first_name,
        below_zero_customers.last_name,
        below_zero_customers.has_marketing_consent,
        cast(audience_offer.offer_code as varchar) as offer_code,
        cast(audience_offer.discount_percent as numeric(5, 2)) as offer_discount_percent,
        cast(audience_offer.channel as varchar) as offer_channel,
        below_zero_customers.next_best_category,
        below_zero_customers.loyalty_tier,
        below_zero_customers.points_balance,
        below_zero_customers.predicted_value_band,
        below_zero_customers.value_tier

    from below_zero_customers
    -- a missing offer leaves offer_code null, which the contract rejects
    left join audience_offer on true

)

select * from final
