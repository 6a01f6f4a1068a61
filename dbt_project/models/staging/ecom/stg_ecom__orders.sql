with

source as (

    select * from {{ source('ecom', 'ecom_orders') }}

),

placeholder_emails as (

    select * from {{ ref('placeholder_emails') }}

),

renamed as (

    select
        cast(order_id as varchar) as order_id,
        cast(version as integer) as order_version,
        cast(status as varchar) as order_status,
        cast(account_id as varchar) as account_id,
        cast({{ normalize_email('email') }} as varchar) as email,
        cast(ordered_at as timestamp with time zone) as ordered_at,
        cast(nullif(trim(shipping_postal_code), '') as varchar) as shipping_postal_code,
        cast(updated_at as timestamp with time zone) as source_updated_at,
        cast(_batch_id as varchar) as load_batch_id

    from source

),

final as (

    select
        renamed.order_id,
        renamed.order_version,
        renamed.order_status,
        renamed.account_id,
        case when placeholder_emails.email is null then renamed.email end as email,
        renamed.ordered_at,
        renamed.shipping_postal_code,
        renamed.source_updated_at,
        renamed.load_batch_id

    from renamed
    left join placeholder_emails
        on renamed.email = placeholder_emails.email

)

select * from final
