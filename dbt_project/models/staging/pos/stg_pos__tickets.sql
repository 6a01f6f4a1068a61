-- each record as of the run's as-of moment: its newest version available then (raw keeps all).
-- A derived table, not an import CTE: other views look its records up by key
-- (macros/versions_as_of.sql).
select
    cast(ticket_id as varchar) as ticket_id,
    cast(store_id as varchar) as store_id,
    cast(loyalty_card_number as varchar) as loyalty_card_number,
    cast(sold_at as timestamp with time zone) as sold_at,
    cast(original_ticket_id as varchar) as original_ticket_id,
    cast(total_amount as numeric(14, 2)) as total_amount,
    cast(updated_at as timestamp with time zone) as source_updated_at,
    cast(_batch_id as varchar) as load_batch_id

from (

    {{ versions_as_of(source('pos', 'pos_tickets'), ['ticket_id'], 'updated_at') }}

) as source
