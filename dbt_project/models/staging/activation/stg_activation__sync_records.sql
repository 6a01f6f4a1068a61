with

source as (

    select * from {{ source('activation', 'sync_records') }}

),

renamed as (

    select
        cast(sync_run_id as bigint) as sync_run_id,
        cast(customer_key as varchar) as customer_key,
        cast(operation as varchar) as operation,
        cast(status as varchar) as record_status

    from source

)

select * from renamed
