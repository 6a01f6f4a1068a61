with

source as (

    select * from {{ source('loyalty', 'loyalty_points') }}

),

renamed as (

    select
        cast(entry_id as varchar) as point_entry_id,
        cast(card_number as varchar) as loyalty_card_number,
        cast(entry_type as varchar) as entry_type,
        cast(points as integer) as points,
        cast(reference_id as varchar) as reference_id,
        cast(occurred_at as timestamp with time zone) as occurred_at,
        cast(_batch_id as varchar) as load_batch_id

    from source

)

select * from renamed
