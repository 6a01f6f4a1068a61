-- One row per campaign and member of its audience on the send date, in the arm staging drew
-- them into: treated (the campaign was for them) or held out (no destination was sent them).
-- The comparison is by arm (intention to treat): a treated member whose delivery failed stays
-- treated (was_sent false), since the draw, not the delivery, is what is random.
with

campaigns as (

    select * from {{ ref('int_campaigns__campaigns') }}

),

audience_members as (

    select * from {{ ref('stg_activation__audience_members') }}

),

sync_runs as (

    select * from {{ ref('stg_activation__sync_runs') }}

),

sync_records as (

    select * from {{ ref('stg_activation__sync_records') }}

),

pushing_runs as (

    select
        sync_run_id,
        audience,
        as_of_date

    from sync_runs
    where sync_status in ('succeeded', 'partial')

),

failed_records as (

    select
        sync_run_id,
        customer_key

    from sync_records
    where record_status = 'failed'

),

-- a treated member was sent when some run pushing the audience that day has no failed record
-- for them (a diff sync records only what changed: an unchanged member is still in the list)
sent_members as (

    select distinct
        audience_members.audience,
        audience_members.as_of_date,
        audience_members.customer_key

    from audience_members
    inner join pushing_runs
        on
            audience_members.audience = pushing_runs.audience
            and audience_members.as_of_date = pushing_runs.as_of_date
    left join failed_records
        on
            pushing_runs.sync_run_id = failed_records.sync_run_id
            and audience_members.customer_key = failed_records.customer_key
    where not audience_members.is_holdout and failed_records.customer_key is null

),

final as (

    select
        campaigns.campaign_id,
        campaigns.audience,
        campaigns.sent_on,
        audience_members.customer_key,
        case when audience_members.is_holdout then 'holdout' else 'treated' end as arm,
        sent_members.customer_key is not null as was_sent

    from campaigns
    inner join audience_members
        on
            campaigns.audience = audience_members.audience
            and campaigns.sent_on = audience_members.as_of_date
    left join sent_members
        on
            audience_members.audience = sent_members.audience
            and audience_members.as_of_date = sent_members.as_of_date
            and audience_members.customer_key = sent_members.customer_key

)

select * from final
