with

-- each record as of the run's as-of moment: its newest version available then (raw keeps all)
source as (

    {{ versions_as_of(source('pos', 'pos_products'), ['product_id'], 'updated_at') }}

),

renamed as (

    select
        cast(product_id as varchar) as product_id,
        cast(product_name as varchar) as product_name,
        cast(category as varchar) as category,
        cast(unit_price as numeric(14, 2)) as list_price,
        cast(unit_cost as numeric(14, 2)) as unit_cost,
        cast(updated_at as timestamp with time zone) as source_updated_at,
        cast(_batch_id as varchar) as load_batch_id

    from source

)

select * from renamed
