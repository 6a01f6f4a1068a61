{{ config(materialized='table') }}

-- One row per customer of customer_segments (the run's as-of date) with every field the
-- audiences select on and campaigns personalise with: contact details (dim_customers), segments
-- (customer_segments), points over all the customer's cards (loyalty_members), the next best
-- category, the predicted CLV and its band (seed predicted_value_bands), the churn risk band. A
-- table: every audience model reads it.
with

customer_segments as (

    select * from {{ ref('customer_segments') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

customer_value as (

    select * from {{ ref('customer_value') }}

),

loyalty_members as (

    select * from {{ ref('loyalty_members') }}

),

next_best_categories as (

    select * from {{ ref('customer_next_best_category') }}

),

predicted_value_bands as (

    select * from {{ ref('predicted_value_bands') }}

),

customer_clv as (

    select * from {{ source('clv', 'customer_clv') }}

),

-- churn risk from the CLV fit of the run's date, for customers with a repeat purchase: BG/NBD
-- holds a one-off buyer alive for sure (p_alive 1), which says nothing of their risk
churn_predictions as (

    select
        customer_key,
        churn_risk_band
    from customer_clv
    where as_of_date = {{ local_date(as_of_at()) }}
        and frequency > 0

),

-- a customer may hold several cards: the points of all of them, and the soonest expiry among
-- the cards with points (each card's balance expires as a whole on its own date)
card_expiries as (

    select
        customer_key,
        points_balance,
        points_expire_on,
        min(points_expire_on) over (partition by customer_key) as first_points_expire_on

    from loyalty_members

),

card_points as (

    select
        customer_key,
        count(*) as loyalty_cards,
        sum(points_balance) as points_balance,
        min(points_expire_on) as points_expire_on,
        sum(case
            when points_expire_on = first_points_expire_on then points_balance
        end) as points_on_first_expiring_cards

    from card_expiries
    group by customer_key

),

-- a card below zero (a return after a redemption) offsets the customer's other cards: what
-- lapses is at most the customer's balance, and nothing lapses when that balance is not positive
customer_points as (

    select
        customer_key,
        loyalty_cards,
        points_balance,
        case
            when least(points_on_first_expiring_cards, points_balance) > 0
                then points_expire_on
        end as points_expire_on,
        case
            when least(points_on_first_expiring_cards, points_balance) > 0
                then least(points_on_first_expiring_cards, points_balance)
        end as points_to_expire

    from card_points

),

customer_profiles as (

    select
        customer_segments.customer_key,
        customer_segments.as_of_date,
        customer_segments.email,
        customers.phone,
        customers.first_name,
        customers.last_name,
        customer_segments.has_marketing_consent,
        customer_segments.first_purchase_at,
        customer_segments.last_purchase_at,
        customer_segments.lifecycle_stage,
        customer_segments.value_tier,
        customer_segments.rfm_segment,
        customer_segments.is_loyalty_member,
        customer_segments.loyalty_tier,
        customer_points.loyalty_cards,
        customer_points.points_balance,
        customer_points.points_expire_on,
        customer_points.points_to_expire,
        next_best_categories.next_best_category,
        customer_value.predicted_clv,
        churn_predictions.churn_risk_band

    from customer_segments
    left join customers
        on customer_segments.customer_key = customers.customer_key
    left join customer_value
        on customer_segments.customer_key = customer_value.customer_key
    left join customer_points
        on customer_segments.customer_key = customer_points.customer_key
    left join next_best_categories
        on customer_segments.customer_key = next_best_categories.customer_key
    left join churn_predictions
        on customer_segments.customer_key = churn_predictions.customer_key

),

-- the band whose bounds hold the prediction (lower inclusive, upper exclusive, a missing bound
-- open); without a prediction, var predicted_value_unknown_band
banded_profiles as (

    select
        customer_profiles.*,
        case
            when customer_profiles.predicted_clv is null
                then {{ quoted_list([var('predicted_value_unknown_band')]) }}
            else predicted_value_bands.predicted_value_band
        end as predicted_value_band

    from customer_profiles
    left join predicted_value_bands
        on (
            predicted_value_bands.min_predicted_clv is null
            or customer_profiles.predicted_clv >= predicted_value_bands.min_predicted_clv
        )
        and (
            predicted_value_bands.max_predicted_clv is null
            or customer_profiles.predicted_clv < predicted_value_bands.max_predicted_clv
        )

),

final as (

    select
        cast(customer_key as varchar) as customer_key,
        as_of_date,
        cast(email as varchar) as email,
        cast(phone as varchar) as phone,
        cast(first_name as varchar) as first_name,
        cast(last_name as varchar) as last_name,
        has_marketing_consent,
        {{ local_date('first_purchase_at') }} as first_purchase_on,
        {{ local_date('last_purchase_at') }} as last_purchase_on,
        cast(lifecycle_stage as varchar) as lifecycle_stage,
        cast(value_tier as varchar) as value_tier,
        cast(rfm_segment as varchar) as rfm_segment,
        is_loyalty_member,
        cast(loyalty_tier as varchar) as loyalty_tier,
        cast(coalesce(loyalty_cards, 0) as integer) as loyalty_cards,
        cast(points_balance as integer) as points_balance,
        points_expire_on,
        cast(points_to_expire as integer) as points_to_expire,
        cast(next_best_category as varchar) as next_best_category,
        cast(predicted_clv as numeric(14, 2)) as predicted_clv,
        cast(predicted_value_band as varchar) as predicted_value_band,
        cast(churn_risk_band as varchar) as churn_risk_band

    from banded_profiles

)

select * from final
