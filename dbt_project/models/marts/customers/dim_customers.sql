-- One row per customer: the golden record (survivorship by seed source_trust), the identifiers
-- per source, purchases, loyalty membership and marketing consent (the CRM's, and the opt-outs
-- the campaign tools report), as of the run's date.
with

clusters as (

    select * from {{ ref('int_identity__clusters') }}

),

records as (

    select * from {{ ref('int_identity__records') }}

),

source_trust as (

    select * from {{ ref('source_trust') }}

),

members as (

    select * from {{ ref('stg_loyalty__members') }}

),

contacts as (

    select * from {{ ref('int_crm__contacts_as_of') }}

),

contact_versions as (

    select * from {{ ref('stg_crm__contacts') }}

),

campaign_tool_opt_outs as (

    select * from {{ ref('int_campaign_tools__opt_outs') }}

),

-- each customer's purchases as of the run's date: first, latest, channels (one owner of the
-- per-customer pass over fct_transactions)
customer_purchases as (

    select * from {{ ref('int_customers__transaction_totals') }}

),

customer_records as (

    select
        clusters.customer_key,
        records.*,
        source_trust.trust_rank

    from clusters
    inner join records
        on clusters.record_id = records.record_id
    inner join source_trust
        on records.source = source_trust.source

),

-- one pass over each customer's records: the survivorship of each attribute (the most trusted
-- source that has a value, then its most recently updated record, then the lowest record id: an
-- ordered aggregate over the customer's few records), and the identifiers per source. One sort
-- by customer rather than a window sort per attribute (measured at 200,000 people: 6.4 of the
-- model's 10 s went to those five sorts and the grouping after them)
customer_identifiers as (

    select
        customer_key,
        {% for attribute in ['first_name', 'last_name', 'email', 'phone', 'postal_code'] %}
        (array_agg({{ attribute }} order by trust_rank asc, source_updated_at desc, record_id asc)
            filter (where {{ attribute }} is not null))[1] as {{ attribute }},
        {% endfor %}
        count(*) as source_record_count,
        min(first_seen_at) as first_seen_at,
        {% for source, column in [('loyalty', 'loyalty_card_numbers'),
                                  ('ecom', 'ecom_account_ids'),
                                  ('crm', 'crm_contact_ids')] %}
        {{ dbt.listagg("case when source = '" ~ source ~ "' then source_id end", "','",
                       "order by source_id") }}
            as {{ column }}
        {%- if not loop.last %},{% endif %}
        {% endfor %}

    from customer_records
    group by customer_key

),

-- a customer with several cards takes the tier of the most recently enrolled one
customer_memberships as (

    select
        customer_records.customer_key,
        members.enrolled_on,
        members.loyalty_tier,
        row_number() over (
            partition by customer_records.customer_key
            order by members.enrolled_on desc, members.loyalty_card_number desc
        ) as membership_rank

    from customer_records
    inner join members
        on customer_records.source = 'loyalty'
        and customer_records.source_id = members.loyalty_card_number
    where members.enrolled_on < {{ local_date(as_of_at()) }}

),

-- an unsubscribe recorded on any version of any of the customer's contacts wins
customer_unsubscribes as (

    select
        customer_records.customer_key,
        min(contact_versions.unsubscribed_at) as unsubscribed_at

    from customer_records
    inner join contact_versions
        on customer_records.source = 'crm'
        and customer_records.source_id = contact_versions.contact_id
    where contact_versions.valid_from < {{ local_date(as_of_at()) }}
        and contact_versions.unsubscribed_at < {{ as_of_at() }}
    group by customer_records.customer_key

),

-- otherwise consent needs every current contact of the customer to have opted in: when the
-- customer's records disagree, the most restrictive wins; a contact whose latest row could not be
-- read (quarantined: is_unreadable) has not consented until a readable row says so
customer_consents as (

    select
        customer_records.customer_key,
        min(
            case
                when contacts.has_marketing_consent and not contacts.is_unreadable then 1
                else 0
            end
        ) = 1 as has_unanimous_consent

    from customer_records
    inner join contacts
        on customer_records.source = 'crm'
        and customer_records.source_id = contacts.contact_id
    group by customer_records.customer_key

),

-- an address a campaign tool reports as unsubscribed or cleaned (bounced), on any of the
-- customer's records, takes consent away too: from its change on, or always when the tool gave no
-- time for it
customer_campaign_tool_opt_outs as (

    select
        customer_records.customer_key,
        min(campaign_tool_opt_outs.opted_out_at) as opted_out_at

    from customer_records
    inner join campaign_tool_opt_outs
        on customer_records.email = campaign_tool_opt_outs.email
    where campaign_tool_opt_outs.opted_out_at < {{ as_of_at() }}
        or campaign_tool_opt_outs.opted_out_at is null
    group by customer_records.customer_key

),

final as (

    select
        cast(customer_identifiers.customer_key as varchar) as customer_key,
        cast(customer_identifiers.first_name as varchar) as first_name,
        cast(customer_identifiers.last_name as varchar) as last_name,
        cast(customer_identifiers.email as varchar) as email,
        cast(customer_identifiers.phone as varchar) as phone,
        cast(customer_identifiers.postal_code as varchar) as postal_code,
        cast(customer_identifiers.loyalty_card_numbers as varchar) as loyalty_card_numbers,
        cast(customer_identifiers.ecom_account_ids as varchar) as ecom_account_ids,
        cast(customer_identifiers.crm_contact_ids as varchar) as crm_contact_ids,
        cast(customer_identifiers.source_record_count as integer) as source_record_count,
        customer_identifiers.first_seen_at,
        customer_purchases.first_purchase_at,
        customer_purchases.last_purchase_at,
        coalesce(customer_purchases.has_store_purchases, false) as has_store_purchases,
        coalesce(customer_purchases.has_online_purchases, false) as has_online_purchases,
        cast(case
            when customer_purchases.has_store_purchases and customer_purchases.has_online_purchases
                then 'both'
            when customer_purchases.has_store_purchases then 'store'
            when customer_purchases.has_online_purchases then 'online'
            else 'none'
        end as varchar) as channels_used,
        customer_memberships.customer_key is not null as is_loyalty_member,
        cast(customer_memberships.loyalty_tier as varchar) as loyalty_tier,
        customer_memberships.enrolled_on as loyalty_enrolled_on,
        coalesce(customer_consents.has_unanimous_consent, false)
            and customer_unsubscribes.customer_key is null
            and customer_campaign_tool_opt_outs.customer_key is null as has_marketing_consent,
        customer_unsubscribes.customer_key is not null as is_unsubscribed,
        customer_unsubscribes.unsubscribed_at,
        customer_campaign_tool_opt_outs.customer_key is not null as is_opted_out_in_campaign_tool,
        customer_campaign_tool_opt_outs.opted_out_at as campaign_tool_opted_out_at,
        {{ local_date(as_of_at()) }} as as_of_date

    from customer_identifiers
    left join customer_memberships
        on customer_identifiers.customer_key = customer_memberships.customer_key
        and customer_memberships.membership_rank = 1
    left join customer_unsubscribes
        on customer_identifiers.customer_key = customer_unsubscribes.customer_key
    left join customer_consents
        on customer_identifiers.customer_key = customer_consents.customer_key
    left join customer_campaign_tool_opt_outs
        on customer_identifiers.customer_key = customer_campaign_tool_opt_outs.customer_key
    left join customer_purchases
        on customer_identifiers.customer_key = customer_purchases.customer_key

)

select * from final
