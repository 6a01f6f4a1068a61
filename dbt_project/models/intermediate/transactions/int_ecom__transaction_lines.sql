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

-- each CTE is read once, so that PostgreSQL inlines them: a filter on the view's columns (the
-- increment of fct_transactions takes the orders changed lately) reaches the orders' scan,
-- where a CTE read twice would be computed whole first (every order version's JSON unnested)
sold_order_lines as (

    select
        sold_orders.order_id,
        sold_orders.account_id,
        sold_orders.ordered_at,
        sold_orders.returned_at,
        sold_orders.source_updated_at,
        order_lines.line_number,
        order_lines.product_id,
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.discount_amount,
        order_lines.load_batch_id

    from sold_orders
    inner join order_lines
        on sold_orders.order_id = order_lines.order_id

),

-- every sold line once as a sale, and once more as a return when the order came back
line_kinds as (

    select
        kinds.is_return,
        kinds.sign

    from (values (false, 1), (true, -1)) as kinds (is_return, sign)

),

-- a return covers the whole order: every line comes back, negated, at the return time
transaction_lines as (

    select
        'ecom:' || sold_order_lines.order_id || ':'
        || cast(sold_order_lines.line_number as varchar)
        || case when line_kinds.is_return then ':return' else '' end as transaction_line_id,
        'ecom:' || sold_order_lines.order_id
        || case when line_kinds.is_return then ':return' else '' end as transaction_id,
        sold_order_lines.account_id,
        sold_order_lines.product_id,
        line_kinds.sign * sold_order_lines.quantity as quantity,
        sold_order_lines.unit_price,
        line_kinds.sign * sold_order_lines.quantity * sold_order_lines.unit_price as gross_amount,
        line_kinds.sign * sold_order_lines.discount_amount as discount_amount,
        line_kinds.sign * (
            sold_order_lines.quantity * sold_order_lines.unit_price
            - sold_order_lines.discount_amount
        ) as net_amount,
        line_kinds.is_return,
        case
            when line_kinds.is_return then sold_order_lines.returned_at
            else sold_order_lines.ordered_at
        end as transacted_at,
        sold_order_lines.source_updated_at,
        sold_order_lines.load_batch_id

    from sold_order_lines
    cross join line_kinds
    where not line_kinds.is_return or sold_order_lines.returned_at < {{ as_of_at() }}

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
