{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='transaction_id',
        on_schema_change='append_new_columns',
        pre_hook=["{{ add_missing_check_constraints() }}"],
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
-- depends_on: {{ ref('int_identity__clusters') }}
{%- set line_columns = [
    'transaction_line_id', 'transaction_id', 'channel', 'store_id', 'product_id', 'quantity',
    'gross_amount', 'discount_amount', 'net_amount', 'is_return', 'transacted_at',
    'source_updated_at', 'customer_source', 'customer_source_id'] %}
{%- set rekeyed_source_ids = {'loyalty': [], 'ecom': []} %}
{%- set write_changes_only = false %}
{%- if is_incremental() and execute %}
    {#- the newest change already loaded, and whether it is later than the as-of moment (a
        backfill), read before the build: a literal, so that PostgreSQL plans the filters below
        on the raw tables' statistics -#}
    {%- set loaded = run_query(
        'select max(source_updated_at), max(source_updated_at) >= ' ~ as_of_at() ~ ' from ' ~ this
    ) %}
    {%- set newest_loaded_change = loaded.columns[0].values()[0] %}
    {%- if newest_loaded_change is not none and not loaded.columns[1].values()[0] %}
        {%- set changed_since -%}
            {{ dbt.dateadd('day', -var('transactions_lookback_days'),
                           "cast('" ~ newest_loaded_change ~ "' as timestamp with time zone)") }}
        {%- endset %}
        {#- the customer records keyed since then (int_identity__clusters' keyed_at: new, or
            moved to another customer by a merge or a split), read before the build too: a
            list of literals, which PostgreSQL matches by hash as it scans tickets and orders
            (measured at 200,000 people with 2,281 such records: 1.5 s; the same list as a
            subquery's array, compared one by one, 18.6 s; `in (subquery)`, every line first,
            10.6 s); one more than the var at most, enough to tell that there are too many -#}
        {%- set most_rekeyed = var('transactions_rewrite_all_above_rekeyed_records') %}
        {%- set rekeyed = run_query(
            'select source, source_id from ' ~ ref('int_identity__clusters')
            ~ ' where keyed_at >= ' ~ changed_since ~ " and source in ('loyalty', 'ecom')"
            ~ ' order by source, source_id limit ' ~ (most_rekeyed + 1)
        ) %}
        {%- if rekeyed.rows | length <= most_rekeyed %}
            {%- set write_changes_only = true %}
            {%- for source, source_id in rekeyed.rows %}
                {%- do rekeyed_source_ids[source].append(source_id) %}
            {%- endfor %}
        {%- endif %}
    {%- endif %}
{%- endif %}
with

-- not materialized: the increment below reads each line view in several branches, each with a
-- filter of its own that must reach the raw tables (PostgreSQL computes a CTE read more than
-- once whole, first)
pos_transaction_lines as not materialized (

    select * from {{ ref('int_pos__transaction_lines') }}

),

ecom_transaction_lines as not materialized (

    select * from {{ ref('int_ecom__transaction_lines') }}

),

products as (

    select * from {{ ref('stg_pos__products') }}

),

source_keys as (

    select * from {{ ref('customer_source_keys') }}

),

{% if write_changes_only %}

-- new and changed lines: every record changed since shortly before the newest change already
-- loaded (late and corrected records), and every line of a customer record keyed since then. One
-- branch per filter, so that each reaches the raw table it is about (measured at 200,000
-- people: one filter with `or` over the two line views computed both whole, 23 s); `union`,
-- not `union all`: a line both changed and re-keyed comes once. A record gone from the clusters
-- has no line left to re-key: a line names a record that exists as of the run (a card on a
-- ticket, an account on an order), or its ticket or order changed and it is among the changed.
changed_transaction_lines as (

    -- POS lines whose ticket changed
    select {{ line_columns | join(', ') }}
    from pos_transaction_lines
    where ticket_updated_at >= {{ changed_since }}

    union

    -- POS lines that changed
    select {{ line_columns | join(', ') }}
    from pos_transaction_lines
    where line_updated_at >= {{ changed_since }}

    union

    -- web shop lines whose order changed
    select {{ line_columns | join(', ') }}
    from ecom_transaction_lines
    where source_updated_at >= {{ changed_since }}
    {%- for lines, customer_source in [
        ('pos_transaction_lines', 'loyalty'), ('ecom_transaction_lines', 'ecom')] %}
    {%- if rekeyed_source_ids[customer_source] %}

    union

    -- every line of a customer record of {{ customer_source }} keyed lately
    select {{ line_columns | join(', ') }}
    from {{ lines }}
    where customer_source_id in ({{ quoted_list(rekeyed_source_ids[customer_source]) }})
    {%- endif %}
    {%- endfor %}

),

{% else %}

-- a first build (or an empty table), a backfill (the table holds versions later than the as-of
-- moment), or more customer records keyed lately than
-- var('transactions_rewrite_all_above_rekeyed_records') (a release that adds keyed_at to the
-- clusters dates every record as of its run): every line, as of the run's date (the post-hook
-- delete_transactions_after_as_of then removes what did not exist yet)
changed_transaction_lines as (

    select {{ line_columns | join(', ') }} from pos_transaction_lines
    union all
    select {{ line_columns | join(', ') }} from ecom_transaction_lines

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
