-- each order as of the run's as-of moment: its newest version available then (raw keeps all).
-- A derived table, not an import CTE as in the other staging views: PostgreSQL flattens such a
-- view into a query that joins it and looks records up by key through raw's index (nested
-- loop); a CTE here kept the increment of fct_transactions from doing so, and it read every
-- version of every record (at 200,000 people that model took 23 s of an increment, 7 s since)
select
    cast(source.order_id as varchar) as order_id,
    cast({{ json_field_text('order_line', 'line_number') }} as integer) as line_number,
    cast({{ json_field_text('order_line', 'sku') }} as varchar) as product_id,
    cast({{ json_field_text('order_line', 'quantity') }} as integer) as quantity,
    cast({{ json_field_text('order_line', 'unit_price') }} as numeric(14, 2)) as unit_price,
    cast({{ json_field_text('order_line', 'discount') }} as numeric(14, 2)) as discount_amount,
    cast(source._batch_id as varchar) as load_batch_id

from (

    {{ versions_as_of(source('ecom', 'ecom_orders'), ['order_id'], 'version') }}

) as source
{{ unnest_json_array('source.lines', 'order_line') }}
