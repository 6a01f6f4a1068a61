with

tickets as (

    select * from {{ ref('stg_pos__tickets') }}

),

ticket_lines as (

    select * from {{ ref('stg_pos__ticket_lines') }}

),

-- a line whose ticket is not in raw (quarantined) has no time or store: it cannot be placed
ticket_lines_as_of as (

    select
        tickets.ticket_id,
        tickets.store_id,
        tickets.loyalty_card_number,
        tickets.original_ticket_id,
        tickets.sold_at,
        ticket_lines.line_number,
        ticket_lines.product_id,
        ticket_lines.quantity,
        ticket_lines.unit_price,
        ticket_lines.discount_amount,
        ticket_lines.net_amount,
        tickets.source_updated_at as ticket_updated_at,
        ticket_lines.source_updated_at as line_updated_at,
        ticket_lines.load_batch_id

    from ticket_lines
    inner join tickets
        on ticket_lines.ticket_id = tickets.ticket_id
    where tickets.sold_at < {{ as_of_at() }}

),

final as (

    select
        'pos:' || ticket_id || ':' || cast(line_number as varchar) as transaction_line_id,
        'pos:' || ticket_id as transaction_id,
        'store' as channel,
        store_id,
        product_id,
        quantity,
        unit_price,
        quantity * unit_price as gross_amount,
        discount_amount,
        net_amount,
        original_ticket_id is not null as is_return,
        sold_at as transacted_at,
        greatest(ticket_updated_at, line_updated_at) as source_updated_at,
        case when loyalty_card_number is not null then 'loyalty' end as customer_source,
        loyalty_card_number as customer_source_id,
        load_batch_id,
        ticket_updated_at,
        line_updated_at

    from ticket_lines_as_of

)

select * from final
