{#- Post-hook of the incremental fct_transactions: an order cancelled before the as-of moment no
    longer counts, so the lines an earlier run loaded for it (its sale and any return) go. -#}
{% macro delete_cancelled_ecom_transactions() -%}
    delete from {{ this }}
    where transaction_id in (
        select 'ecom:' || orders.order_id || suffix.transaction_suffix
        from {{ ref('stg_ecom__orders') }} as orders
        inner join {{ ref('ecom_order_statuses') }} as order_statuses
            on orders.order_status = order_statuses.order_status
        cross join (select '' as transaction_suffix union all select ':return') as suffix
        where order_statuses.is_cancelled
            and orders.source_updated_at < {{ as_of_at() }}
    )
{%- endmacro %}
