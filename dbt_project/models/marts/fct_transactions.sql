with

pos_transaction_lines as (

    select * from {{ ref('int_pos__transaction_lines') }}

),

ecom_transaction_lines as (

    select * from {{ ref('int_ecom__transaction_lines') }}

),

products as (

    select * from {{ ref('stg_pos__products') }}

),

transaction_lines as (

    select * from pos_transaction_lines
    union all
    select * from ecom_transaction_lines

),

-- an unknown product keeps its line (it was sold) with no category and no cost
transaction_lines_with_products as (

    select
        transaction_lines.*,
        products.category,
        transaction_lines.quantity * products.unit_cost as cost_amount

    from transaction_lines
    left join products
        on transaction_lines.product_id = products.product_id

),

final as (

    select
        cast(transaction_line_id as varchar) as transaction_line_id,
        cast(transaction_id as varchar) as transaction_id,
        cast(channel as varchar) as channel,
        cast(store_id as varchar) as store_id,
        cast(product_id as varchar) as product_id,
        cast(category as varchar) as category,
        cast(quantity as integer) as quantity,
        cast(gross_amount as numeric(14, 2)) as gross_amount,
        cast(discount_amount as numeric(14, 2)) as discount_amount,
        cast(net_amount as numeric(14, 2)) as net_amount,
        cast(cost_amount as numeric(14, 2)) as cost_amount,
        cast(net_amount - cost_amount as numeric(14, 2)) as margin_amount,
        is_return,
        transacted_at,
        {{ local_date('transacted_at') }} as transacted_on,
        cast(customer_key as varchar) as customer_key

    from transaction_lines_with_products

)

select * from final
