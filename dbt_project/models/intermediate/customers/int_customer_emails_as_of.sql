-- INTERIM, until identity resolution exists: the email of each interim customer key
-- ('card:' || loyalty card, 'account:' || shop account), normalised for matching.
with

members as (

    select * from {{ ref('stg_loyalty__members') }}

),

orders as (

    select * from {{ ref('stg_ecom__orders') }}

),

placeholder_emails as (

    select * from {{ ref('placeholder_emails') }}

),

card_emails as (

    select
        'card:' || loyalty_card_number as customer_key,
        {{ normalize_email('email') }} as email

    from members

),

-- the account's email is the one on its most recent order placed before the as-of moment
account_orders_ranked as (

    select
        account_id,
        email,
        row_number() over (
            partition by account_id
            order by ordered_at desc, order_version desc, order_id desc
        ) as recency_rank

    from orders
    where ordered_at < {{ as_of_at() }}

),

account_emails as (

    select
        'account:' || account_id as customer_key,
        {{ normalize_email('email') }} as email

    from account_orders_ranked
    where recency_rank = 1

),

customer_emails as (

    select * from card_emails
    union all
    select * from account_emails

),

final as (

    select
        customer_emails.customer_key,
        case when placeholder_emails.email is null then customer_emails.email end as email

    from customer_emails
    left join placeholder_emails
        on customer_emails.email = placeholder_emails.email

)

select * from final
