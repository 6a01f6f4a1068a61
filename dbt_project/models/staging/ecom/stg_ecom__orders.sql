with

-- each order as of the run's as-of moment: its newest version available then (raw keeps all)
source as (

    {{ versions_as_of(source('ecom', 'ecom_orders'), ['order_id'], 'version') }}

),

renamed as (

    select
        cast(order_id as varchar) as order_id,
        cast(version as integer) as order_version,
        cast(status as varchar) as order_status,
        cast(account_id as varchar) as account_id,
        cast({{ unless_placeholder(normalize_email('email'), 'placeholder_emails', 'email') }}
            as varchar) as email,
        cast(ordered_at as timestamp with time zone) as ordered_at,
        cast(nullif(trim(shipping_postal_code), '') as varchar) as shipping_postal_code,
        cast(updated_at as timestamp with time zone) as source_updated_at,
        cast(_batch_id as varchar) as load_batch_id

    from source

)

select * from renamed
