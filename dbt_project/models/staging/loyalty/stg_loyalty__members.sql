with

-- each record as of the run's as-of moment: its newest version available then (raw keeps all)
source as (

    {{ versions_as_of(source('loyalty', 'loyalty_members'), ['card_number'], 'updated_at') }}

),

renamed as (

    select
        cast(card_number as varchar) as loyalty_card_number,
        cast({{ normalize_name('first_name') }} as varchar) as first_name,
        cast({{ normalize_name('last_name') }} as varchar) as last_name,
        cast({{ unless_placeholder(normalize_email('email'), 'placeholder_emails', 'email') }}
            as varchar) as email,
        cast({{ unless_placeholder(normalize_phone('phone'), 'placeholder_phones', 'phone') }}
            as varchar) as phone,
        cast(nullif(trim(postal_code), '') as varchar) as postal_code,
        cast(enrolled_on as date) as enrolled_on,
        cast(tier as varchar) as loyalty_tier,
        cast(updated_at as timestamp with time zone) as source_updated_at,
        cast(_batch_id as varchar) as load_batch_id

    from source

)

select * from renamed
