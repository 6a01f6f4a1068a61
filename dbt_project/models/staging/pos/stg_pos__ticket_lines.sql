-- each record as of the run's as-of moment: its newest version available then (raw keeps all).
-- A derived table, not an import CTE: other views look its records up by key
-- (macros/versions_as_of.sql).
select
    cast(ticket_id as varchar) as ticket_id,
    cast(line_number as integer) as line_number,
    cast(product_id as varchar) as product_id,
    cast(quantity as integer) as quantity,
    cast(unit_price as numeric(14, 2)) as unit_price,
    cast(discount_amount as numeric(14, 2)) as discount_amount,
    cast(net_amount as numeric(14, 2)) as net_amount,
    cast(updated_at as timestamp with time zone) as source_updated_at,
    cast(_batch_id as varchar) as load_batch_id

from (

    {{ versions_as_of(
        source('pos', 'pos_ticket_lines'), ['ticket_id', 'line_number'], 'updated_at'
    ) }}

) as source
