{{ config(materialized='table') }}

-- Every source record that stands for a person, as known before the as-of moment: loyalty cards
-- (members, and cards seen on tickets before the member export), web shop accounts and CRM
-- contacts. Records are the nodes of the identity graph.
with

members as (

    select * from {{ ref('stg_loyalty__members') }}

),

tickets as (

    select * from {{ ref('stg_pos__tickets') }}

),

orders as (

    select * from {{ ref('stg_ecom__orders') }}

),

contact_versions as (

    select * from {{ ref('stg_crm__contacts') }}

),

member_records as (

    select
        'loyalty' as source,
        loyalty_card_number as source_id,
        {{ local_day_start('enrolled_on') }} as first_seen_at,
        source_updated_at,
        first_name,
        last_name,
        email,
        phone,
        postal_code

    from members
    where enrolled_on < {{ local_date(as_of_at()) }}

),

-- a card on a ticket whose member is not (yet) in the loyalty export still identifies a buyer
card_only_records as (

    select
        'loyalty' as source,
        tickets.loyalty_card_number as source_id,
        min(tickets.sold_at) as first_seen_at,
        max(tickets.sold_at) as source_updated_at,
        cast(null as varchar) as first_name,
        cast(null as varchar) as last_name,
        cast(null as varchar) as email,
        cast(null as varchar) as phone,
        cast(null as varchar) as postal_code

    from tickets
    left join member_records
        on tickets.loyalty_card_number = member_records.source_id
    where tickets.loyalty_card_number is not null
        and tickets.sold_at < {{ as_of_at() }}
        and member_records.source_id is null
    group by tickets.loyalty_card_number

),

orders_as_of as (

    select
        *,
        row_number() over (
            partition by account_id
            order by ordered_at desc, order_id desc
        ) as recency_rank,
        min(ordered_at) over (partition by account_id) as account_first_order_at

    from orders
    where ordered_at < {{ as_of_at() }}

),

-- an account's details are those of its most recent order
account_records as (

    select
        'ecom' as source,
        account_id as source_id,
        account_first_order_at as first_seen_at,
        ordered_at as source_updated_at,
        cast(null as varchar) as first_name,
        cast(null as varchar) as last_name,
        email,
        cast(null as varchar) as phone,
        shipping_postal_code as postal_code

    from orders_as_of
    where recency_rank = 1

),

-- a contact keeps identifying its person after it leaves the CRM's snapshot: its last version
contact_versions_as_of as (

    select
        *,
        row_number() over (partition by contact_id order by valid_from desc) as recency_rank,
        min(source_updated_at) over (partition by contact_id) as contact_first_seen_at

    from contact_versions
    where valid_from < {{ local_date(as_of_at()) }}

),

contact_records as (

    select
        'crm' as source,
        contact_id as source_id,
        contact_first_seen_at as first_seen_at,
        source_updated_at,
        first_name,
        last_name,
        email,
        phone,
        postal_code

    from contact_versions_as_of
    where recency_rank = 1

),

records as (

    select * from member_records
    union all
    select * from card_only_records
    union all
    select * from account_records
    union all
    select * from contact_records

),

final as (

    select
        source || ':' || source_id as record_id,
        source,
        source_id,
        first_seen_at,
        source_updated_at,
        first_name,
        last_name,
        email,
        phone,
        postal_code,
        cast(row_number() over (order by first_seen_at, source, source_id) as bigint) as record_rank

    from records

)

select * from final
