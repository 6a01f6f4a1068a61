{{ config(severity='error') }}

-- Every line before the as-of moment that has a customer points at a customer of dim_customers.
-- (After a backfill of an earlier date, lines of later dates keep the keys of the later run.)
select
    transactions.transaction_line_id,
    transactions.customer_key

from {{ ref('fct_transactions') }} as transactions
left join {{ ref('dim_customers') }} as customers
    on transactions.customer_key = customers.customer_key
where transactions.transacted_at < {{ as_of_at() }}
    and transactions.customer_key is not null
    and customers.customer_key is null
