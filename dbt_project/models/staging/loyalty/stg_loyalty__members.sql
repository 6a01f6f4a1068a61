with

source as (

    select * from {{ source('loyalty', 'loyalty_members') }}

),

placeholder_emails as (

    select * from {{ ref('placeholder_emails') }}

),

placeholder_phones as (

    select * from {{ ref('placeholder_phones') }}

),

renamed as (

    select
        cast(card_number as varchar) as loyalty_card_number,
        cast({{ normalize_name('first_name') }} as varchar) as first_name,
        cast({{ normalize_name('last_name') }} as varchar) as last_name,
        cast({{ normalize_email('email') }} as varchar) as email,
        cast({{ normalize_phone('phone') }} as varchar) as phone,
        cast(nullif(trim(postal_code), '') as varchar) as postal_code,
        cast(enrolled_on as date) as enrolled_on,
        cast(tier as varchar) as loyalty_tier,
        cast(updated_at as timestamp with time zone) as source_updated_at,
        cast(_batch_id as varchar) as load_batch_id

    from source

),

final as (

    select
        renamed.loyalty_card_number,
        renamed.first_name,
        renamed.last_name,
        case when placeholder_emails.email is null then renamed.email end as email,
        case when placeholder_phones.phone is null then renamed.phone end as phone,
        renamed.postal_code,
        renamed.enrolled_on,
        renamed.loyalty_tier,
        renamed.source_updated_at,
        renamed.load_batch_id

    from renamed
    left join placeholder_emails
        on renamed.email = placeholder_emails.email
    left join placeholder_phones
        on renamed.phone = placeholder_phones.phone

)

select * from final
