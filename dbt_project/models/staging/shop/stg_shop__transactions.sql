with

source as (

    select * from {{ source('shop', 'shop_transactions') }}

),

renamed as (

    select
        cast(transaction_id as varchar) as transaction_id,
        cast(customer_id as varchar) as shop_customer_id,
        cast(transacted_at as timestamp with time zone) as transacted_at,
        cast(amount as numeric(14, 2)) as net_amount,
        cast(updated_at as timestamp with time zone) as source_updated_at,
        cast(_batch_id as varchar) as load_batch_id

    from source

)

select * from renamed
