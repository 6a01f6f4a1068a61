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

customer_category_counts as (

    select
        customer_key,
        count(*) as categories_bought

    from customer_categories
    group by customer_key

),

-- every category paired with one the customer bought, unless they bought it already
candidate_categories as (

    select
        customer_categories.customer_key,
        affinities.antecedent_category,
        affinities.consequent_category,
        affinities.transactions_with_both,
        affinities.confidence,
        affinities.lift,
        affinities.lift * affinities.confidence as affinity_score

    from customer_categories
    inner join affinities
        on customer_categories.category = affinities.antecedent_category
    left join customer_categories as already_bought
        on customer_categories.customer_key = already_bought.customer_key
        and affinities.consequent_category = already_bought.category
    where already_bought.customer_key is null

),

-- ties: the higher score, then the pair bought together more often, then the category and then
-- the category it comes from in alphabetical order
ranked_candidates as (

    select
        candidate_categories.*,
        row_number() over (
            partition by customer_key
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
        cast(ranked_candidates.customer_key as varchar) as customer_key,
        cast(ranked_candidates.consequent_category as varchar) as next_best_category,
        cast(ranked_candidates.antecedent_category as varchar) as because_of_category,
        cast(ranked_candidates.affinity_score as numeric(18, 6)) as affinity_score,
        cast(ranked_candidates.confidence as numeric(10, 6)) as confidence,
        cast(ranked_candidates.lift as numeric(12, 6)) as lift,
        cast(ranked_candidates.transactions_with_both as integer) as transactions_with_both,
        cast(customer_category_counts.categories_bought as integer) as categories_bought,
        {{ local_date(as_of_at()) }} as as_of_date

    from ranked_candidates
    inner join customer_category_counts
        on ranked_candidates.customer_key = customer_category_counts.customer_key
    where ranked_candidates.candidate_rank = 1

)

select * from final
