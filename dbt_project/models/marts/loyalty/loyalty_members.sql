-- One row per loyalty member (card) enrolled before the run's date: its customer, tier and the
-- tier's privileges, the points balance and its value, and the points moved over the last 12
-- months, as of the run's moment.
with

members as (

    select * from {{ ref('stg_loyalty__members') }}

),

point_entries as (

    select * from {{ ref('stg_loyalty__point_entries') }}

),

source_keys as (

    select * from {{ ref('customer_source_keys') }}

),

tier_privileges as (

    select * from {{ ref('loyalty_tier_privileges') }}

),

-- the last 12 months (var loyalty_trailing_months): from the first moment of the same calendar
-- day 12 months before the as-of date, inclusive (an entry at exactly that moment counts), up to
-- the as-of moment, exclusive
trailing_window as (

    select
        {{ local_day_start(dbt.dateadd('month', -var('loyalty_trailing_months'),
                                       local_date(as_of_at()))) }} as window_start_at

),

-- only what was booked before the as-of moment counts (a backfill sees no later entries)
entries_before_as_of as (

    select * from point_entries
    where occurred_at < {{ as_of_at() }}

),

card_points as (

    select
        entries_before_as_of.loyalty_card_number,
        sum(entries_before_as_of.points) as points_balance,
        {% for entry_type, column, sign in [
            ('earn', 'points_earned_last_12_months', ''),
            ('redeem', 'points_redeemed_last_12_months', '-'),
            ('expire', 'points_expired_last_12_months', '-'),
            ('adjust', 'points_adjusted_last_12_months', ''),
        ] %}
        sum(case
            when entries_before_as_of.entry_type = '{{ entry_type }}'
                and entries_before_as_of.occurred_at >= trailing_window.window_start_at
                then {{ sign }}entries_before_as_of.points
            else 0
        end) as {{ column }},
        {% endfor %}
        -- activity, as the club counts it for expiry: earning or redeeming
        max(case
            when entries_before_as_of.entry_type in ('earn', 'redeem')
                then entries_before_as_of.occurred_at
        end) as last_activity_at,
        max(entries_before_as_of.occurred_at) as last_entry_at

    from entries_before_as_of
    cross join trailing_window
    group by entries_before_as_of.loyalty_card_number

),

members_as_of as (

    select * from members
    where enrolled_on < {{ local_date(as_of_at()) }}

),

member_points as (

    select
        members_as_of.loyalty_card_number,
        members_as_of.loyalty_tier,
        members_as_of.enrolled_on,
        coalesce(card_points.points_balance, 0) as points_balance,
        coalesce(card_points.points_earned_last_12_months, 0) as points_earned_last_12_months,
        coalesce(card_points.points_redeemed_last_12_months, 0) as points_redeemed_last_12_months,
        coalesce(card_points.points_expired_last_12_months, 0) as points_expired_last_12_months,
        coalesce(card_points.points_adjusted_last_12_months, 0) as points_adjusted_last_12_months,
        card_points.last_activity_at,
        card_points.last_entry_at,
        -- without activity the balance expires on the same calendar day some months after the
        -- last activity (or the enrolment when there was none yet)
        coalesce({{ local_date('card_points.last_activity_at') }}, members_as_of.enrolled_on)
            as expiry_clock_started_on

    from members_as_of
    left join card_points
        on members_as_of.loyalty_card_number = card_points.loyalty_card_number

),

final as (

    select
        cast(member_points.loyalty_card_number as varchar) as loyalty_card_number,
        cast(source_keys.customer_key as varchar) as customer_key,
        cast(member_points.loyalty_tier as varchar) as loyalty_tier,
        member_points.enrolled_on,
        cast(member_points.points_balance as integer) as points_balance,
        cast(member_points.points_balance * {{ var('loyalty_point_value') }} as numeric(14, 2))
            as points_balance_value,
        cast(member_points.points_earned_last_12_months as integer) as points_earned_last_12_months,
        cast(member_points.points_redeemed_last_12_months as integer)
            as points_redeemed_last_12_months,
        cast(member_points.points_expired_last_12_months as integer)
            as points_expired_last_12_months,
        cast(member_points.points_adjusted_last_12_months as integer)
            as points_adjusted_last_12_months,
        cast(case
            when member_points.points_earned_last_12_months > 0
                then 1.0 * member_points.points_redeemed_last_12_months
                    / member_points.points_earned_last_12_months
        end as numeric(10, 4)) as redemption_rate_last_12_months,
        member_points.last_activity_at,
        {{ local_date('member_points.last_activity_at') }} as last_activity_on,
        member_points.last_entry_at,
        cast(case
            when member_points.points_balance > 0
                then {{ dbt.dateadd('month', var('loyalty_points_expiry_months'),
                                    'member_points.expiry_clock_started_on') }}
        end as date) as points_expire_on,
        cast(tier_privileges.tier_rank as integer) as tier_rank,
        cast(tier_privileges.points_multiplier as numeric(4, 2)) as points_multiplier,
        tier_privileges.has_free_shipping,
        tier_privileges.has_birthday_gift,
        tier_privileges.has_priority_service,
        cast(tier_privileges.service_compensation_limit as numeric(14, 2))
            as service_compensation_limit,
        {{ local_date(as_of_at()) }} as as_of_date

    from member_points
    left join source_keys
        on source_keys.source = 'loyalty'
        and member_points.loyalty_card_number = source_keys.source_id
    left join tier_privileges
        on member_points.loyalty_tier = tier_privileges.tier

)

select * from final
