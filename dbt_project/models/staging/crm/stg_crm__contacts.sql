with

source as (

    select * from {{ source('crm', 'crm_contacts') }}

),

renamed as (

    select
        cast(contact_id as varchar) as contact_id,
        cast(first_name as varchar) as first_name,
        cast(last_name as varchar) as last_name,
        cast(email as varchar) as email,
        cast(phone as varchar) as phone,
        cast(postal_code as varchar) as postal_code,
        cast(marketing_consent as boolean) as has_marketing_consent,
        cast(consent_updated_at as timestamp with time zone) as consent_updated_at,
        cast(unsubscribed_at as timestamp with time zone) as unsubscribed_at,
        cast(updated_at as timestamp with time zone) as source_updated_at,
        cast(_valid_from as date) as valid_from,
        cast(_valid_to as date) as valid_to,
        cast(_batch_id as varchar) as load_batch_id

    from source

)

select * from renamed
