-- Every address a campaign tool says must not be mailed again: Mailchimp's unsubscribed and
-- cleaned contacts (the consent pull) and the event export's unsubscribes and hard bounces; and,
-- failing safe, the address of every event row the loader could not read (quarantined: it may
-- have been an unsubscribe), from its file's day. One owner of the rule: dim_customers takes the
-- consent of a customer with one of these addresses.
with

mailchimp_opt_outs as (

    select * from {{ ref('stg_mailchimp__opt_outs') }}

),

campaign_events as (

    select * from {{ ref('stg_campaigns__events') }}

),

quarantined_rows as (

    select * from {{ ref('stg_loader__quarantined_rows') }}

),

loaded_batches as (

    select * from {{ ref('stg_loader__batches') }}

),

from_mailchimp as (

    select
        email,
        opt_out_status as opt_out_reason,
        opted_out_at,
        'mailchimp' as reported_by

    from mailchimp_opt_outs

),

from_event_export as (

    select
        email,
        case event_type when 'hard_bounce' then 'cleaned' else 'unsubscribed' end as opt_out_reason,
        occurred_at as opted_out_at,
        'campaign_events' as reported_by

    from campaign_events
    where event_type in ('unsubscribe', 'hard_bounce') and email is not null

),

-- the export's columns: event_id, campaign_id, customer_key, email, event_type, occurred_at
unreadable_event_addresses as (

    select
        {{ normalize_email(dbt.split_part('quarantined_rows.payload', "','", 4)) }} as email,
        coalesce(
            {{ local_day_start('loaded_batches.file_day') }},
            loaded_batches.loaded_for_interval_end
        ) as opted_out_at

    from quarantined_rows
    inner join loaded_batches
        on
            quarantined_rows.source_name = loaded_batches.source_name
            and quarantined_rows.load_batch_id = loaded_batches.load_batch_id
    where quarantined_rows.source_name = 'campaign_events'

),

from_unreadable_events as (

    select
        email,
        'unreadable' as opt_out_reason,
        opted_out_at,
        'campaign_events' as reported_by

    from unreadable_event_addresses
    where email like '%_@_%'

),

final as (

    select * from from_mailchimp
    union all
    select * from from_event_export
    union all
    select * from from_unreadable_events

)

select * from final
