-- For each customer, the category to offer next (cross-sell / up-sell audiences): among the
-- categories that product_affinity pairs with one they bought, and that they never bought, the
-- one with the highest lift x confidence.
with

transactions as (

    select * from {{ ref('fct_transactions') }}

),

affinities as (

    select * from {{ ref('product_affinity') }}

),

-- what each known customer bought before the as-of moment (returns and unknown products left out)
customer_categories as (

    select distinct
        customer_key,
        category

    from transactions
    where customer_key is not null
        and not is_return
        and category is not null
        and transacted_at < {{ as_of_at() }}

),

-- each customer's categories, in order: the recommendation depends on this set alone
customer_category_sets as (

    select
        customer_key,
        array_agg(category order by category) as categories,
        count(*) as categories_bought

    from customer_categories
    group by customer_key

),

-- customers who bought the same categories get the same recommendation: it is chosen once per
-- set of categories, not once per customer (far fewer sets than customers)
category_sets as (

    select distinct categories
    from customer_category_sets

),

-- every category paired with one of the set, unless the set holds it already
candidate_categories as (

    select
        category_sets.categories,
        affinities.antecedent_category,
        affinities.consequent_category,
        affinities.transactions_with_both,
        affinities.confidence,
        affinities.lift,
        affinities.lift * affinities.confidence as affinity_score

    from category_sets
    cross join lateral unnest(category_sets.categories) as bought (category)
    inner join affinities
        on bought.category = affinities.antecedent_category
    where not affinities.consequent_category = any(category_sets.categories)

),

-- ties: the higher score, then the pair bought together more often, then the category and then
-- the category it comes from in alphabetical order
ranked_candidates as (

    select
        candidate_categories.*,
        row_number() over (
            partition by categories
            order by
                affinity_score desc,
                transactions_with_both desc,
                consequent_category asc,
                antecedent_category asc
        ) as candidate_rank

    from candidate_categories

),

final as (

    select
        cast(customer_category_sets.customer_key as varchar) as customer_key,
        cast(ranked_candidates.consequent_category as varchar) as next_best_category,
        cast(ranked_candidates.antecedent_category as varchar) as because_of_category,
        cast(ranked_candidates.affinity_score as numeric(18, 6)) as affinity_score,
        cast(ranked_candidates.confidence as numeric(10, 6)) as confidence,
        cast(ranked_candidates.lift as numeric(12, 6)) as lift,
        cast(ranked_candidates.transactions_with_both as integer) as transactions_with_both,
        cast(customer_category_sets.categories_bought as integer) as categories_bought,
        {{ local_date(as_of_at()) }} as as_of_date

    from customer_category_sets
    inner join ranked_candidates
        on customer_category_sets.categories = ranked_candidates.categories
    where ranked_candidates.candidate_rank = 1

)

select * from final
