{{ config(materialized='table') }}

-- Every email and shipping postal code a web shop account's orders carried before the as-of
-- moment, each combination once: the identifiers of an account are all of them (its record in
-- int_identity__records holds only its most recent order's). A table, built beside the records
-- from the orders: int_identity__identifiers reads it, and its incremental runs compare each
-- account's combinations with those its identifiers were derived from.
with

orders as (

    select * from {{ ref('stg_ecom__orders') }}

),

final as (

    select distinct
        'ecom:' || account_id as record_id,
        email,
        shipping_postal_code

    from orders
    where ordered_at < {{ as_of_at() }}
        and (email is not null or shipping_postal_code is not null)

)

select * from final
