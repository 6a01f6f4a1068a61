{#- Quintile scores, 1..5, with ties sharing a score.

    A row's score on a measure is 1 + floor(5 * (rank - 1) / n), where rank is SQL's rank() of the
    row among the n rows ordered by the measure (tied rows share the rank of the first of them).
    Ties get the same score and the same inputs always give the same scores (unlike ntile, which
    splits ties arbitrarily); the lowest value always scores 1.

    The score depends on the value only and never decreases as the value moves along the order,
    so it is computed in two steps rather than by ranking every row: `score_by_rank_bounds` ranks
    the measure's distinct values (a count per value, a running sum over the values) and returns
    one row holding, for each score from 2 to 5, the first value of the order reaching it;
    `score_by_rank` then scores a row by comparing its value with those four bounds. The result
    is exactly the rank() formula, without sorting the rows. -#}

{#- The select (one row) of the bounds of `column` in `relation` (a CTE): columns
    <name>_score_<s>_from for s in 2..5, null when no value reaches s. `descending`: the order is
    by the measure descending (a lower value scores higher). -#}
{% macro score_by_rank_bounds(relation, column, name, descending=false) -%}
    select
        {%- for score in range(2, 6) %}
        {{ 'max' if descending else 'min' }}(value) filter (where score >= {{ score }})
            as {{ name }}_score_{{ score }}_from{{ ',' if not loop.last }}
        {%- endfor %}

    from (
        select
            value,
            cast(1 + 5 * (value_rank - 1) / row_count as integer) as score

        from ({{ distinct_value_ranks(relation, column, descending) }}) as value_ranks
    ) as value_scores
{%- endmacro %}

{#- A row's score on `column` from the bounds `score_by_rank_bounds` gave (joined as `bounds`). -#}
{% macro score_by_rank(column, bounds, name, descending=false) -%}
    cast(1
        {%- for score in range(2, 6) %}
        + case when {{ column }} {{ '<=' if descending else '>=' }} {{ bounds }}.{{ name }}_score_{{ score }}_from then 1 else 0 end
        {%- endfor %}
    as integer)
{%- endmacro %}

{#- The select (one row, column threshold_value) of the lowest value of `column` in `relation`
    among the rows ranked in the top `share` by it, descending, and above zero: the rows whose
    rank() (ties share the first rank) is at most share × n and whose value is above zero are
    exactly those whose value reaches threshold_value (null when there are none). Computed on the
    distinct values, like score_by_rank_bounds. -#}
{% macro top_share_threshold(relation, column, share) -%}
    select min(value) as threshold_value

    from ({{ distinct_value_ranks(relation, column, descending=true) }}) as value_ranks
    where value_rank <= {{ share }} * row_count and value > 0
{%- endmacro %}

{#- The select of each distinct value of `column` in `relation` with its
    rank(): 1 + the number of rows before it in the order (by the value, `descending` or not),
    and row_count, the number of rows. -#}
{% macro distinct_value_ranks(relation, column, descending=false) -%}
    select
        value,
        cast(sum(value_count) over (
            order by value {{ 'desc' if descending }} rows unbounded preceding
        ) as bigint) - value_count + 1 as value_rank,
        cast(sum(value_count) over () as bigint) as row_count

    from (
        select {{ column }} as value, count(*) as value_count
        from {{ relation }}
        group by {{ column }}
    ) as value_counts
{%- endmacro %}
