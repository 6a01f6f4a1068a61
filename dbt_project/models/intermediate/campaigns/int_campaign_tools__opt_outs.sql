-- Every address a campaign tool says must not be mailed again: Mailchimp's unsubscribed and
-- cleaned contacts (the consent pull) and the event export's unsubscribes and hard bounces. One
-- owner of the rule: dim_customers takes the consent of a customer with one of these addresses.
with

mailchimp_opt_outs as (

    select * from {{ ref('stg_mailchimp__opt_outs') }}

),

campaign_events as (

    select * from {{ ref('stg_campaigns__events') }}

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

final as (

    select * from from_mailchimp
    union all
    select * from from_event_export

)

select * from final
