with

source as (

    select * from {{ source('crm', 'crm_contacts') }}

),

renamed as (

    select
        cast(customer_id as varchar) as shop_customer_id,
        cast(email as varchar) as email,
        cast(first_name as varchar) as first_name,
        cast(last_name as varchar) as last_name,
        cast(has_marketing_consent as boolean) as has_marketing_consent,
        cast(unsubscribed_at as timestamp with time zone) as unsubscribed_at,
        cast(_valid_from as date) as valid_from,
        cast(_valid_to as date) as valid_to

    from source

)

select * from renamed
