with

source as (

    select * from {{ source('loader', 'quarantine') }}

),

renamed as (

    select
        cast(source as varchar) as source_name,
        cast(batch_id as varchar) as load_batch_id,
        cast(line_number as integer) as line_number,
        cast(reason as varchar) as quarantine_reason,
        cast(payload as varchar) as payload

    from source

)

select * from renamed
