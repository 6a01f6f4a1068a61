with

source as (

    select * from {{ source('activation', 'sync_runs') }}

),

renamed as (

    select
        cast(sync_run_id as bigint) as sync_run_id,
        cast(sync_name as varchar) as sync_name,
        cast(audience as varchar) as audience,
        cast(destination as varchar) as destination,
        cast(as_of_date as date) as as_of_date,
        cast(run_id as varchar) as run_id,
        cast(status as varchar) as sync_status,
        cast(started_at as timestamp with time zone) as started_at,
        cast(finished_at as timestamp with time zone) as finished_at

    from source

)

select * from renamed
