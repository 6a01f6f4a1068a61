with

source as (

    select * from {{ source('activation', 'audience_members') }}

),

renamed as (

    select
        cast(as_of_date as date) as as_of_date,
        cast(audience as varchar) as audience,
        cast(customer_key as varchar) as customer_key,
        cast(email as varchar) as email,
        cast(is_holdout as boolean) as is_holdout

    from source

)

select * from renamed
