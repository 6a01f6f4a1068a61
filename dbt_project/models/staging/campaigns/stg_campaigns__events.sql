with

source as (

    select * from {{ source('campaigns', 'campaign_events') }}

),

renamed as (

    select
        cast(event_id as varchar) as event_id,
        cast(campaign_id as varchar) as campaign_id,
        cast(customer_key as varchar) as customer_key,
        cast({{ normalize_email('email') }} as varchar) as email,
        cast(event_type as varchar) as event_type,
        cast(occurred_at as timestamp with time zone) as occurred_at,
        cast(_batch_id as varchar) as load_batch_id

    from source

)

select * from renamed
