-- Each campaign's result against its holdout, overall and per segment on the send date (RFM
-- segment, value tier, lifecycle stage): the arms' sizes, the treated arm's opens and clicks,
-- both arms' purchase rate, revenue, margin, ticket size and frequency per member, and the lift
-- (treated minus held out) with its 95% interval: Newcombe's hybrid score interval (from the
-- arms' Wilson intervals) for the purchase rate, Welch's unequal-variance t interval for the
-- means per member (degrees of freedom Welch-Satterthwaite, rounded down to a tabulated value of
-- seed student_t_critical_values). Incremental revenue and margin scale the lift per member to
-- the treated arm; the margin already carries the offer's discount, and the net margin takes the
-- contact cost of every member sent.
with

campaigns as (

    select * from {{ ref('int_campaigns__campaigns') }}

),

campaign_history as (

    select * from {{ ref('customer_campaign_history') }}

),

t_ranges as (

    select * from {{ ref('int_statistics__t_critical_ranges') }}

),

members_by_segment as (

    select
        'all' as segment_type,
        'all' as segment,
        campaign_history.*
    from campaign_history
    union all
    select
        'rfm_segment' as segment_type,
        rfm_segment as segment,
        campaign_history.*
    from campaign_history
    union all
    select
        'value_tier' as segment_type,
        value_tier as segment,
        campaign_history.*
    from campaign_history
    union all
    select
        'lifecycle_stage' as segment_type,
        lifecycle_stage as segment,
        campaign_history.*
    from campaign_history

),

arm_totals as (

    select
        campaign_id,
        segment_type,
        segment,
        arm,
        count(*) as members,
        sum(case when was_sent then 1 else 0 end) as sent,
        sum(case when was_delivered then 1 else 0 end) as delivered,
        sum(case when opened then 1 else 0 end) as opened,
        sum(case when clicked then 1 else 0 end) as clicked,
        sum(case when unsubscribed then 1 else 0 end) as unsubscribed,
        sum(case when has_purchased then 1 else 0 end) as buyers,
        sum(purchases) as purchases,
        sum(net_amount) as revenue,
        sum(margin_amount) as margin,
        sum(discount_amount) as discount,
        cast(var_samp(net_amount) as double precision) as revenue_variance,
        cast(var_samp(margin_amount) as double precision) as margin_variance

    from members_by_segment
    group by campaign_id, segment_type, segment, arm

),

arms as (

    select
        campaign_id,
        segment_type,
        segment,
        {%- for arm in ['treated', 'holdout'] %}
        {%- for measure in ['members', 'sent', 'delivered', 'opened', 'clicked', 'unsubscribed',
                            'buyers', 'purchases', 'revenue', 'margin', 'discount'] %}
        coalesce(sum(case when arm = '{{ arm }}' then {{ measure }} end), 0)
            as {{ arm }}_{{ measure }},
        {%- endfor %}
        {%- for measure in ['revenue_variance', 'margin_variance'] %}
        max(case when arm = '{{ arm }}' then {{ measure }} end) as {{ arm }}_{{ measure }},
        {%- endfor %}
        {%- endfor %}
        1.959963984540054 as z_95

    from arm_totals
    group by campaign_id, segment_type, segment

),

arm_rates as (

    select
        *,
        {%- for arm in ['treated', 'holdout'] %}
        {%- set members = 'nullif(' ~ arm ~ '_members, 0)' %}
        cast({{ arm }}_buyers as double precision) / {{ members }} as {{ arm }}_purchase_rate,
        cast({{ arm }}_revenue as double precision) / {{ members }}
            as {{ arm }}_revenue_per_member,
        cast({{ arm }}_margin as double precision) / {{ members }} as {{ arm }}_margin_per_member,
        cast({{ arm }}_revenue as double precision) / nullif({{ arm }}_purchases, 0)
            as {{ arm }}_ticket_size,
        cast({{ arm }}_purchases as double precision) / {{ members }}
            as {{ arm }}_purchase_frequency{{ ',' if not loop.last }}
        {%- endfor %}

    from arms

),

-- Wilson score interval of each arm's purchase rate: (p + z²/2n ± z √(p(1-p)/n + z²/4n²)) /
-- (1 + z²/n)
wilson_intervals as (

    select
        *,
        {%- for arm in ['treated', 'holdout'] %}
        {%- set n = 'nullif(' ~ arm ~ '_members, 0)' %}
        {%- set p = arm ~ '_purchase_rate' %}
        {%- for side, sign in [('low', '-'), ('high', '+')] %}
        (
            {{ p }} + z_95 * z_95 / (2 * {{ n }})
            {{ sign }} z_95 * sqrt({{ p }} * (1 - {{ p }}) / {{ n }}
                + z_95 * z_95 / (4.0 * {{ n }} * {{ n }}))
        ) / (1 + z_95 * z_95 / {{ n }}) as {{ arm }}_wilson_{{ side }},
        {%- endfor %}
        {%- endfor %}
        {%- for measure in ['revenue', 'margin'] %}
        sqrt(
            treated_{{ measure }}_variance / nullif(treated_members, 0)
            + holdout_{{ measure }}_variance / nullif(holdout_members, 0)
        ) as {{ measure }}_standard_error,
        {%- endfor %}
        treated_purchase_rate - holdout_purchase_rate as purchase_rate_lift

    from arm_rates

),

-- Welch-Satterthwaite degrees of freedom, rounded down to whole degrees (1e-9 absorbs the float
-- error of an exact integer)
welch_degrees as (

    select
        *,
        {%- for measure in ['revenue', 'margin'] %}
        {%- set se = measure ~ '_standard_error' %}
        case when {{ se }} > 0 then floor(
            1e-9 + power({{ se }}, 4) / (
                power(treated_{{ measure }}_variance / treated_members, 2)
                / nullif(treated_members - 1, 0)
                + power(holdout_{{ measure }}_variance / holdout_members, 2)
                / nullif(holdout_members - 1, 0)
            )
        ) end as {{ measure }}_welch_degrees{{ ',' if not loop.last }}
        {%- endfor %}

    from wilson_intervals

),

with_critical_values as (

    select
        welch_degrees.*,
        revenue_t.critical_value as revenue_t_critical_value,
        margin_t.critical_value as margin_t_critical_value

    from welch_degrees
    left join t_ranges as revenue_t
        on
            welch_degrees.revenue_welch_degrees >= revenue_t.degrees_from
            and (
                revenue_t.degrees_to is null
                or welch_degrees.revenue_welch_degrees < revenue_t.degrees_to
            )
    left join t_ranges as margin_t
        on
            welch_degrees.margin_welch_degrees >= margin_t.degrees_from
            and (
                margin_t.degrees_to is null
                or welch_degrees.margin_welch_degrees < margin_t.degrees_to
            )

),

-- Newcombe's hybrid score interval of the difference of two rates, from their Wilson intervals
lifts as (

    select
        *,
        purchase_rate_lift - sqrt(power(treated_purchase_rate - treated_wilson_low, 2)
            + power(holdout_wilson_high - holdout_purchase_rate, 2)) as purchase_rate_lift_low,
        purchase_rate_lift + sqrt(power(treated_wilson_high - treated_purchase_rate, 2)
            + power(holdout_purchase_rate - holdout_wilson_low, 2)) as purchase_rate_lift_high,
        {%- for measure in ['revenue', 'margin'] %}
        treated_{{ measure }}_per_member - holdout_{{ measure }}_per_member
            as {{ measure }}_lift_per_member,
        case when {{ measure }}_standard_error = 0 then 0
            else {{ measure }}_t_critical_value * {{ measure }}_standard_error
        end as {{ measure }}_lift_half_width{{ ',' if not loop.last }}
        {%- endfor %}

    from with_critical_values

),

with_costs as (

    select
        lifts.*,
        campaigns.audience,
        campaigns.sent_on,
        campaigns.offer_code,
        campaigns.discount_percent,
        campaigns.channel,
        campaigns.window_start_at,
        campaigns.window_end_at,
        campaigns.is_window_complete,
        cast(campaigns.cost_per_contact as double precision) * lifts.treated_sent as sending_cost

    from lifts
    inner join campaigns
        on lifts.campaign_id = campaigns.campaign_id

),

final as (

    select
        campaign_id,
        audience,
        sent_on,
        offer_code,
        discount_percent,
        channel,
        window_start_at,
        window_end_at,
        is_window_complete,
        cast(segment_type as varchar) as segment_type,
        cast(segment as varchar) as segment,
        {%- for count in ['treated_members', 'holdout_members', 'treated_sent', 'treated_delivered',
                          'treated_opened', 'treated_clicked', 'treated_unsubscribed'] %}
        cast({{ count }} as integer) as {{ count }},
        {%- endfor %}
        -- of the deliveries the campaign tool reported (none reported: no rate)
        cast(treated_opened as double precision) / nullif(treated_delivered, 0) as open_rate,
        cast(treated_clicked as double precision) / nullif(treated_delivered, 0) as click_rate,
        cast(treated_buyers as integer) as treated_buyers,
        cast(holdout_buyers as integer) as holdout_buyers,
        treated_purchase_rate,
        holdout_purchase_rate,
        purchase_rate_lift,
        purchase_rate_lift_low,
        purchase_rate_lift_high,
        {%- for amount in ['treated_revenue', 'holdout_revenue', 'treated_margin', 'holdout_margin',
                           'treated_discount'] %}
        cast({{ amount }} as numeric(16, 2)) as {{ amount }},
        {%- endfor %}
        treated_revenue_per_member,
        holdout_revenue_per_member,
        treated_margin_per_member,
        holdout_margin_per_member,
        treated_ticket_size,
        holdout_ticket_size,
        treated_purchase_frequency,
        holdout_purchase_frequency,
        {%- for measure in ['revenue', 'margin'] %}
        {{ measure }}_lift_per_member,
        {{ measure }}_lift_per_member - {{ measure }}_lift_half_width
            as {{ measure }}_lift_per_member_low,
        {{ measure }}_lift_per_member + {{ measure }}_lift_half_width
            as {{ measure }}_lift_per_member_high,
        {%- endfor %}
        revenue_lift_per_member * treated_members as incremental_revenue,
        (revenue_lift_per_member - revenue_lift_half_width) * treated_members
            as incremental_revenue_low,
        (revenue_lift_per_member + revenue_lift_half_width) * treated_members
            as incremental_revenue_high,
        cast(sending_cost as numeric(16, 2)) as contact_cost,
        margin_lift_per_member * treated_members - sending_cost as incremental_margin,
        (margin_lift_per_member - margin_lift_half_width) * treated_members - sending_cost
            as incremental_margin_low,
        (margin_lift_per_member + margin_lift_half_width) * treated_members - sending_cost
            as incremental_margin_high

    from with_costs

)

select * from final
