with

-- each record as of the run's as-of moment: its newest version available then (raw keeps all)
source as (

    {{ versions_as_of(source('pos', 'pos_stores'), ['store_id'], 'updated_at') }}

),

renamed as (

    select
        cast(store_id as varchar) as store_id,
        cast(store_name as varchar) as store_name,
        cast(city as varchar) as city,
        cast(opened_on as date) as opened_on,
        cast(updated_at as timestamp with time zone) as source_updated_at,
        cast(_batch_id as varchar) as load_batch_id

    from source

)

select * from renamed
