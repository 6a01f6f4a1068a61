-- Points reminder audience: loyalty members with at least var points_expiring_min_points points
-- that lapse within var points_expiring_within_days days after the as-of date (the balance of
-- the customer's cards expiring soonest), reminded to earn or redeem before they are lost.
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

-- points lapsing after the as-of date (a balance expiring on it is gone by the campaign) and
-- on the last day of the window at the latest
expiring_points_members as (

    select * from audience_profiles
    where points_expire_on > as_of_date
        and points_expire_on
        <= {{ dbt.dateadd('day', var('points_expiring_within_days'), 'as_of_date') }}
        and points_to_expire >= {{ var('points_expiring_min_points') }}

),

final as (

    select
        expiring_points_members.customer_key,
        expiring_points_members.as_of_date,
        expiring_points_members.email,
        expiring_points_members.phone,
        expiring_points_members.first_name,
        expiring_points_members.last_name,
        expiring_points_members.has_marketing_consent,
        cast(audience_offer.offer_code as varchar) as offer_code,
        cast(audience_offer.discount_percent as numeric(5, 2)) as offer_discount_percent,
        cast(audience_offer.channel as varchar) as offer_channel,
        expiring_points_members.next_best_category,
        expiring_points_members.loyalty_tier,
        expiring_points_members.points_balance,
        expiring_points_members.predicted_value_band,
        expiring_points_members.points_expire_on,
        expiring_points_members.points_to_expire

    from expiring_points_members
    -- a missing offer leaves offer_code null, which the contract rejects
    left join audience_offer on true

)

select * from final
