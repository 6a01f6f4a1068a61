with

orders as (

    select * from {{ ref('stg_ecom__orders') }}

),

order_lines as (

    select * from {{ ref('stg_ecom__order_lines') }}

),

order_statuses as (

    select * from {{ ref('ecom_order_statuses') }}

),

-- staging holds each order's version as of the as-of moment: its updated_at dates the
-- cancellation or the return
orders_as_of as (

    select
        orders.order_id,
        orders.account_id,
        orders.ordered_at,
        orders.source_updated_at,
        case when order_statuses.is_cancelled then orders.source_updated_at end as cancelled_at,
        case when order_statuses.is_returned then orders.source_updated_at end as returned_at

    from orders
    inner join order_statuses
        on orders.order_status = order_statuses.order_status
    where orders.ordered_at < {{ as_of_at() }}

),

-- an order cancelled after the as-of moment was still a sale then
sold_orders as (

    select * from orders_as_of
    where cancelled_at is null or cancelled_at >= {{ as_of_at() }}

),

sale_lines as (

    select
        'ecom:' || sold_orders.order_id || ':' || cast(order_lines.line_number as varchar)
            as transaction_line_id,
        'ecom:' || sold_orders.order_id as transaction_id,
        sold_orders.account_id,
        order_lines.product_id,
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.quantity * order_lines.unit_price as gross_amount,
        order_lines.discount_amount,
        order_lines.quantity * order_lines.unit_price - order_lines.discount_amount as net_amount,
        false as is_return,
        sold_orders.ordered_at as transacted_at,
        sold_orders.source_updated_at,
        order_lines.load_batch_id

    from sold_orders
    inner join order_lines
        on sold_orders.order_id = order_lines.order_id

),

-- a return covers the whole order: every line comes back, negated, at the return time
return_lines as (

    select
        'ecom:' || sold_orders.order_id || ':' || cast(order_lines.line_number as varchar)
            || ':return'
            as transaction_line_id,
        'ecom:' || sold_orders.order_id || ':return' as transaction_id,
        sold_orders.account_id,
        order_lines.product_id,
        -order_lines.quantity as quantity,
        order_lines.unit_price,
        -(order_lines.quantity * order_lines.unit_price) as gross_amount,
        -order_lines.discount_amount as discount_amount,
        -(order_lines.quantity * order_lines.unit_price - order_lines.discount_amount)
            as net_amount,
        true as is_return,
        sold_orders.returned_at as transacted_at,
        sold_orders.source_updated_at,
        order_lines.load_batch_id

    from sold_orders
    inner join order_lines
        on sold_orders.order_id = order_lines.order_id
    where sold_orders.returned_at < {{ as_of_at() }}

),

transaction_lines as (

    select * from sale_lines
    union all
    select * from return_lines

),

final as (

    select
        transaction_line_id,
        transaction_id,
        'online' as channel,
        cast(null as varchar) as store_id,
        product_id,
        quantity,
        unit_price,
        gross_amount,
        discount_amount,
        net_amount,
        is_return,
        transacted_at,
        source_updated_at,
        'ecom' as customer_source,
        account_id as customer_source_id,
        load_batch_id

    from transaction_lines

)

select * from final
