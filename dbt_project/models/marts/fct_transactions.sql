{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='transaction_id',
        on_schema_change='append_new_columns',
        post_hook=["{{ delete_cancelled_ecom_transactions() }}",
                   "{{ delete_transactions_after_as_of() }}"],
        indexes=[{'columns': [byte_order('customer_key'), 'transaction_id', 'transacted_at',
                              'transacted_on', 'is_return', 'channel', 'net_amount',
                              'discount_amount', 'margin_amount']}]
    )
}}

-- The index holds the lines in customer order with every column the per-customer pass
-- (int_customers__transaction_totals) reads, so that pass reads it in order (index-only scans, one
-- per customer key range) instead of sorting all the lines every night; the incremental runs keep
-- it up to date. Keyed on the customer key's bytes, as that pass groups (macro byte_order). dbt
-- creates it with the table (first run, full refresh).

-- depends_on: {{ ref('stg_ecom__orders') }}
-- depends_on: {{ ref('ecom_order_statuses') }}
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

source_keys as (

    select * from {{ ref('customer_source_keys') }}

),

transaction_lines as (

    select * from pos_transaction_lines
    union all
    select * from ecom_transaction_lines

),

{% if is_incremental() %}

loaded_lines as (

    select * from {{ this }}

),

-- transactions whose customer record now belongs to another customer (a merge or a split)
rekeyed_transactions as (

    select distinct loaded_lines.transaction_id

    from loaded_lines
    left join source_keys
        on loaded_lines.customer_source = source_keys.source
        and loaded_lines.customer_source_id = source_keys.source_id
    where loaded_lines.customer_source_id is not null
        and loaded_lines.customer_key is distinct from source_keys.customer_key

),

-- the newest change already loaded, read once
newest_loaded_change as (

    select max(loaded_lines.source_updated_at) as source_updated_at
    from loaded_lines

),

-- new and changed transactions: any record changed since shortly before the newest change
-- already loaded (late and corrected records), and the re-keyed ones; in a backfill (the table
-- holds versions later than the as-of moment), every transaction, as of the run's date (the
-- post-hook delete_transactions_after_as_of then removes what did not exist yet). The re-keyed
-- ones by a left join, not `in (...)` inside the `or`: PostgreSQL hashes such a list only when it
-- fits work_mem, else it scans it again for every line of the history (measured at 1 M people
-- with 5,787 re-keyed transactions: 393 s, against more than 901 s)
changed_transaction_lines as (

    select transaction_lines.*
    from transaction_lines
    cross join newest_loaded_change
    left join rekeyed_transactions
        on transaction_lines.transaction_id = rekeyed_transactions.transaction_id
    where transaction_lines.source_updated_at >= {{ dbt.dateadd(
            'day', -var('transactions_lookback_days'), 'newest_loaded_change.source_updated_at'
        ) }}
        or rekeyed_transactions.transaction_id is not null
        or newest_loaded_change.source_updated_at >= {{ as_of_at() }}

),

{% else %}

changed_transaction_lines as (

    select * from transaction_lines

),

{% endif %}

-- an unknown product keeps its line (it was sold) with no category and no cost
transaction_lines_with_products as (

    select
        changed_transaction_lines.*,
        products.category,
        changed_transaction_lines.quantity * products.unit_cost as cost_amount

    from changed_transaction_lines
    left join products
        on changed_transaction_lines.product_id = products.product_id

),

final as (

    select
        cast(transaction_lines_with_products.transaction_line_id as varchar) as transaction_line_id,
        cast(transaction_lines_with_products.transaction_id as varchar) as transaction_id,
        cast(transaction_lines_with_products.channel as varchar) as channel,
        cast(transaction_lines_with_products.store_id as varchar) as store_id,
        cast(transaction_lines_with_products.product_id as varchar) as product_id,
        cast(transaction_lines_with_products.category as varchar) as category,
        cast(transaction_lines_with_products.quantity as integer) as quantity,
        cast(transaction_lines_with_products.gross_amount as numeric(14, 2)) as gross_amount,
        cast(transaction_lines_with_products.discount_amount as numeric(14, 2)) as discount_amount,
        cast(transaction_lines_with_products.net_amount as numeric(14, 2)) as net_amount,
        cast(transaction_lines_with_products.cost_amount as numeric(14, 2)) as cost_amount,
        cast(
            transaction_lines_with_products.net_amount
            - transaction_lines_with_products.cost_amount as numeric(14, 2)
        ) as margin_amount,
        transaction_lines_with_products.is_return,
        transaction_lines_with_products.transacted_at,
        {{ local_date('transaction_lines_with_products.transacted_at') }} as transacted_on,
        cast(source_keys.customer_key as varchar) as customer_key,
        cast(transaction_lines_with_products.customer_source as varchar) as customer_source,
        cast(transaction_lines_with_products.customer_source_id as varchar) as customer_source_id,
        transaction_lines_with_products.source_updated_at

    from transaction_lines_with_products
    left join source_keys
        on transaction_lines_with_products.customer_source = source_keys.source
        and transaction_lines_with_products.customer_source_id = source_keys.source_id

)

select * from final
