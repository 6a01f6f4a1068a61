{#- A 1..5 score by quintile of `order_by` among all rows: 1 + floor(5 * (rank - 1) / n), where
    rank is SQL's rank() (tied rows share the rank of the first of them). Ties get the same score
    and the same inputs always give the same scores (unlike ntile, which splits ties arbitrarily);
    the lowest value always scores 1. -#}
{% macro score_by_rank(order_by) -%}
    cast(1 + (5 * (rank() over (order by {{ order_by }}) - 1)) / count(*) over () as integer)
{%- endmacro %}
