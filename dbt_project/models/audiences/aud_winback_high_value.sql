-- Valuable customers at risk of leaving, to win back before they go: a value tier of var
-- winback_value_tiers, and at risk: the CLV fit's churn risk band for the run's date in var
-- winback_churn_risk_bands, or, without one (no prediction for the date, a one-off buyer), a
-- lifecycle stage in var winback_lifecycle_stages. Every such customer, consent or not.
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

-- the CLV fit's churn risk band when it has one for the customer, else the lifecycle stage
churn_risk_assessments as (

    select
        audience_profiles.*,
        case
            when churn_risk_band is not null
                then churn_risk_band in ({{ quoted_list(var('winback_churn_risk_bands')) }})
            else lifecycle_stage in ({{ quoted_list(var('winback_lifecycle_stages')) }})
        end as is_at_risk_of_churn,
        case
            when churn_risk_band is not null then 'predicted_clv'
            else 'lifecycle_stage'
        end as churn_risk_basis

    from audience_profiles

),

winback_customers as (

    select * from churn_risk_assessments
    where value_tier in ({{ quoted_list(var('winback_value_tiers')) }})
        and is_at_risk_of_churn

),

final as (

    select
        winback_customers.customer_key,
        winback_customers.as_of_date,
        winback_customers.email,
        winback_customers.phone,
        winback_customers.first_name,
        winback_customers.last_name,
        winback_customers.has_marketing_consent,
        cast(audience_offer.offer_code as varchar) as offer_code,
        cast(audience_offer.discount_percent as numeric(5, 2)) as offer_discount_percent,
        cast(audience_offer.channel as varchar) as offer_channel,
        winback_customers.next_best_category,
        winback_customers.loyalty_tier,
        winback_customers.points_balance,
        winback_customers.predicted_value_band,
        winback_customers.value_tier,
        winback_customers.lifecycle_stage,
        winback_customers.churn_risk_band,
        cast(winback_customers.churn_risk_basis as varchar) as churn_risk_basis,
        winback_customers.last_purchase_on

    from winback_customers
    -- a missing offer leaves offer_code null, which the contract rejects
    left join audience_offer on true

)

select * from final
