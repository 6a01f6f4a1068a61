with

source as (

    select * from {{ source('loader', 'load_audit') }}

),

renamed as (

    select
        cast(source as varchar) as source_name,
        cast(batch_id as varchar) as load_batch_id,
        cast(file_day as date) as file_day,
        cast(interval_end as timestamp with time zone) as loaded_for_interval_end

    from source

)

select * from renamed
