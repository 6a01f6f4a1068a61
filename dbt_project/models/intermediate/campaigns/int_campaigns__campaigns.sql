-- One row per campaign: an audience sent on a date (the as-of date its syncs pushed, by one or
-- more destinations), with the offer and channel it went out with and its attribution window.
-- A run of date D pushes after its marts are built: the marts as of D hold the campaigns sent
-- before D (so a re-run of D builds the same marts as its first run).
with

sync_runs as (

    select * from {{ ref('stg_activation__sync_runs') }}

),

audience_offers as (

    select * from {{ ref('audience_offers') }}

),

contact_costs as (

    select * from {{ ref('campaign_contact_costs') }}

),

pushed_audience_days as (

    select
        audience,
        as_of_date as sent_on,
        count(distinct sync_name) as syncs

    from sync_runs
    where sync_status in ('succeeded', 'partial')
        and as_of_date < {{ local_date(as_of_at()) }}
    group by audience, as_of_date

),

campaigns as (

    select
        pushed_audience_days.audience || '/' || cast(pushed_audience_days.sent_on as varchar)
            as campaign_id,
        pushed_audience_days.audience,
        pushed_audience_days.sent_on,
        pushed_audience_days.syncs,
        audience_offers.offer_code,
        audience_offers.discount_percent,
        audience_offers.channel,
        contact_costs.cost_per_contact,
        {{ local_day_start('pushed_audience_days.sent_on') }} as window_start_at,
        {{ local_day_start(dbt.dateadd('day', var('campaign_attribution_window_days'),
                                       'pushed_audience_days.sent_on')) }} as window_end_at

    from pushed_audience_days
    left join audience_offers
        on pushed_audience_days.audience = 'aud_' || audience_offers.audience
    left join contact_costs
        on audience_offers.channel = contact_costs.channel

),

final as (

    select
        *,
        window_end_at <= {{ as_of_at() }} as is_window_complete

    from campaigns

)

select * from final
