-- Who got which campaign, when, on which channel, in which arm, and how they responded: the
-- campaign tool's events (treated members only: nobody sends the held-out) and the purchases
-- attributed to the campaign within its window; the member's segments on the send date.
with

campaigns as (

    select * from {{ ref('int_campaigns__campaigns') }}

),

campaign_members as (

    select * from {{ ref('int_campaigns__members') }}

),

attributed_purchases as (

    select * from {{ ref('int_campaigns__attributed_purchases') }}

),

campaign_events as (

    select * from {{ ref('stg_campaigns__events') }}

),

sync_runs as (

    select * from {{ ref('stg_activation__sync_runs') }}

),

segment_history as (

    select * from {{ ref('segment_history') }}

),

-- the tool names a campaign by the sync that pushed it and its date: `<sync>/<as-of date>`
tool_campaigns as (

    select distinct
        sync_name || '/' || cast(as_of_date as varchar) as tool_campaign_id,
        audience || '/' || cast(as_of_date as varchar) as campaign_id

    from sync_runs

),

member_events as (

    select
        tool_campaigns.campaign_id,
        campaign_events.customer_key,
        {{ dbt.bool_or("campaign_events.event_type = 'delivery'") }} as was_delivered,
        {{ dbt.bool_or("campaign_events.event_type in ('hard_bounce', 'soft_bounce')") }}
            as bounced,
        {{ dbt.bool_or("campaign_events.event_type = 'open'") }} as opened,
        {{ dbt.bool_or("campaign_events.event_type = 'click'") }} as clicked,
        {{ dbt.bool_or("campaign_events.event_type = 'unsubscribe'") }} as unsubscribed,
        min(case when campaign_events.event_type = 'open' then campaign_events.occurred_at end)
            as first_opened_at,
        min(case when campaign_events.event_type = 'click' then campaign_events.occurred_at end)
            as first_clicked_at

    from campaign_events
    inner join tool_campaigns
        on campaign_events.campaign_id = tool_campaigns.tool_campaign_id
    where campaign_events.occurred_at < {{ as_of_at() }}
    group by tool_campaigns.campaign_id, campaign_events.customer_key

),

member_purchases as (

    select
        campaign_id,
        customer_key,
        count(*) as purchases,
        sum(gross_amount) as gross_amount,
        sum(discount_amount) as discount_amount,
        sum(net_amount) as net_amount,
        sum(margin_amount) as margin_amount

    from attributed_purchases
    group by campaign_id, customer_key

),

final as (

    select
        cast(campaign_members.campaign_id as varchar) as campaign_id,
        campaign_members.customer_key,
        campaigns.audience,
        campaigns.sent_on,
        campaigns.offer_code,
        campaigns.channel,
        cast(campaign_members.arm as varchar) as arm,
        campaign_members.was_sent,
        cast(coalesce(segment_history.rfm_segment, 'unknown') as varchar) as rfm_segment,
        cast(coalesce(segment_history.value_tier, 'unknown') as varchar) as value_tier,
        cast(coalesce(segment_history.lifecycle_stage, 'unknown') as varchar) as lifecycle_stage,
        coalesce(member_events.was_delivered, false) as was_delivered,
        coalesce(member_events.bounced, false) as bounced,
        coalesce(member_events.opened, false) as opened,
        coalesce(member_events.clicked, false) as clicked,
        coalesce(member_events.unsubscribed, false) as unsubscribed,
        member_events.first_opened_at,
        member_events.first_clicked_at,
        campaigns.window_start_at,
        campaigns.window_end_at,
        campaigns.is_window_complete,
        cast(coalesce(member_purchases.purchases, 0) as integer) as purchases,
        coalesce(member_purchases.purchases, 0) > 0 as has_purchased,
        cast(coalesce(member_purchases.gross_amount, 0) as numeric(14, 2)) as gross_amount,
        cast(coalesce(member_purchases.discount_amount, 0) as numeric(14, 2)) as discount_amount,
        cast(coalesce(member_purchases.net_amount, 0) as numeric(14, 2)) as net_amount,
        cast(coalesce(member_purchases.margin_amount, 0) as numeric(14, 2)) as margin_amount

    from campaign_members
    inner join campaigns
        on campaign_members.campaign_id = campaigns.campaign_id
    left join segment_history
        on
            campaign_members.customer_key = segment_history.customer_key
            and campaign_members.sent_on = segment_history.as_of_date
    left join member_events
        on
            campaign_members.campaign_id = member_events.campaign_id
            and campaign_members.customer_key = member_events.customer_key
    left join member_purchases
        on
            campaign_members.campaign_id = member_purchases.campaign_id
            and campaign_members.customer_key = member_purchases.customer_key

)

select * from final
