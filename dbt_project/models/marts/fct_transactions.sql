with

transactions as (

    select * from {{ ref('stg_shop__transactions') }}

),

transactions_as_of as (

    select
        transaction_id,
        shop_customer_id as customer_key,
        'shop' as channel,
        transacted_at,
        {{ local_date('transacted_at') }} as transacted_on,
        net_amount,
        net_amount < 0 as is_return

    from transactions
    where transacted_at < {{ as_of_at() }}

),

final as (

    select * from transactions_as_of

)

select * from final
