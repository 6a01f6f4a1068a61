with

source as (

    select * from {{ source('crm', 'crm_contacts') }}

),

renamed as (

    select
        cast(contact_id as varchar) as contact_id,
        cast({{ normalize_name('first_name') }} as varchar) as first_name,
        cast({{ normalize_name('last_name') }} as varchar) as last_name,
        cast({{ unless_placeholder(normalize_email('email'), 'placeholder_emails', 'email') }}
            as varchar) as email,
        cast({{ unless_placeholder(normalize_phone('phone'), 'placeholder_phones', 'phone') }}
            as varchar) as phone,
        cast(nullif(trim(postal_code), '') as varchar) as postal_code,
        cast(marketing_consent as boolean) as has_marketing_consent,
        cast(consent_updated_at as timestamp with time zone) as consent_updated_at,
        cast(unsubscribed_at as timestamp with time zone) as unsubscribed_at,
        cast(updated_at as timestamp with time zone) as source_updated_at,
        cast(_valid_from as date) as valid_from,
        cast(_valid_to as date) as valid_to,
        cast(_unreadable as boolean) as is_unreadable,
        cast(_batch_id as varchar) as load_batch_id

    from source

)

select * from renamed
