with

source as (

    select * from {{ source('crm', 'crm_contacts') }}

),

placeholder_emails as (

    select * from {{ ref('placeholder_emails') }}

),

placeholder_phones as (

    select * from {{ ref('placeholder_phones') }}

),

renamed as (

    select
        cast(contact_id as varchar) as contact_id,
        cast({{ normalize_name('first_name') }} as varchar) as first_name,
        cast({{ normalize_name('last_name') }} as varchar) as last_name,
        cast({{ normalize_email('email') }} as varchar) as email,
        cast({{ normalize_phone('phone') }} as varchar) as phone,
        cast(nullif(trim(postal_code), '') as varchar) as postal_code,
        cast(marketing_consent as boolean) as has_marketing_consent,
        cast(consent_updated_at as timestamp with time zone) as consent_updated_at,
        cast(unsubscribed_at as timestamp with time zone) as unsubscribed_at,
        cast(updated_at as timestamp with time zone) as source_updated_at,
        cast(_valid_from as date) as valid_from,
        cast(_valid_to as date) as valid_to,
        cast(_batch_id as varchar) as load_batch_id

    from source

),

final as (

    select
        renamed.contact_id,
        renamed.first_name,
        renamed.last_name,
        case when placeholder_emails.email is null then renamed.email end as email,
        case when placeholder_phones.phone is null then renamed.phone end as phone,
        renamed.postal_code,
        renamed.has_marketing_consent,
        renamed.consent_updated_at,
        renamed.unsubscribed_at,
        renamed.source_updated_at,
        renamed.valid_from,
        renamed.valid_to,
        renamed.load_batch_id

    from renamed
    left join placeholder_emails
        on renamed.email = placeholder_emails.email
    left join placeholder_phones
        on renamed.phone = placeholder_phones.phone

)

select * from final
