-- each order as of the run's as-of moment: its newest version available then (raw keeps all).
-- A derived table, not an import CTE: other views look its records up by key
-- (macros/versions_as_of.sql).
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
