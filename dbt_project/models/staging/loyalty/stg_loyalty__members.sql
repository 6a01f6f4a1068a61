with

source as (

    select * from {{ source('loyalty', 'loyalty_members') }}

),

renamed as (

    select
        cast(card_number as varchar) as loyalty_card_number,
        cast(first_name as varchar) as first_name,
        cast(last_name as varchar) as last_name,
        cast(email as varchar) as email,
        cast(phone as varchar) as phone,
        cast(postal_code as varchar) as postal_code,
        cast(enrolled_on as date) as enrolled_on,
        cast(tier as varchar) as loyalty_tier,
        cast(updated_at as timestamp with time zone) as source_updated_at,
        cast(_batch_id as varchar) as load_batch_id

    from source

)

select * from renamed
