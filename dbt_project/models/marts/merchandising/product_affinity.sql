-- Which product categories are bought together: one row per ordered pair of categories (A, B)
-- found in the same transactions, with the pair's support, confidence (A -> B) and lift.
with

transactions as (

    select * from {{ ref('fct_transactions') }}

),

-- a basket is a sale (returns and lines of unknown products left out) before the as-of moment;
-- one row per basket and category bought in it
basket_categories as (

    select distinct
        transaction_id,
        category

    from transactions
    where not is_return
        and category is not null
        and transacted_at < {{ as_of_at() }}

),

basket_totals as (

    select count(distinct transaction_id) as transactions_total

    from basket_categories

),

category_baskets as (

    select
        category,
        count(*) as transactions_with_category

    from basket_categories
    group by category

),

-- pairs seen together fewer than var affinity_min_transactions_together times are left out
pair_baskets as (

    select
        antecedents.category as antecedent_category,
        consequents.category as consequent_category,
        count(*) as transactions_with_both

    from basket_categories as antecedents
    inner join basket_categories as consequents
        on antecedents.transaction_id = consequents.transaction_id
        and antecedents.category <> consequents.category
    group by antecedents.category, consequents.category
    having count(*) >= {{ var('affinity_min_transactions_together') }}

),

final as (

    select
        cast(pair_baskets.antecedent_category as varchar) as antecedent_category,
        cast(pair_baskets.consequent_category as varchar) as consequent_category,
        cast(basket_totals.transactions_total as integer) as transactions_total,
        cast(antecedent_baskets.transactions_with_category as integer)
            as transactions_with_antecedent,
        cast(consequent_baskets.transactions_with_category as integer)
            as transactions_with_consequent,
        cast(pair_baskets.transactions_with_both as integer) as transactions_with_both,
        cast(1.0 * pair_baskets.transactions_with_both / basket_totals.transactions_total
            as numeric(10, 6)) as support,
        cast(
            1.0 * pair_baskets.transactions_with_both
            / antecedent_baskets.transactions_with_category as numeric(10, 6)
        ) as confidence,
        cast(1.0 * pair_baskets.transactions_with_both * basket_totals.transactions_total
            / antecedent_baskets.transactions_with_category
            / consequent_baskets.transactions_with_category as numeric(12, 6)) as lift,
        {{ local_date(as_of_at()) }} as as_of_date

    from pair_baskets
    cross join basket_totals
    inner join category_baskets as antecedent_baskets
        on pair_baskets.antecedent_category = antecedent_baskets.category
    inner join category_baskets as consequent_baskets
        on pair_baskets.consequent_category = consequent_baskets.category

)

select * from final
