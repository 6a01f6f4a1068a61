{#- Every month start (a date, the first of the month) from `first_month` to `last_month`, both
    included, as a query with one column `month_start_on`: a recursive CTE (portable SQL), for a
    CTE body. Both arguments are SQL expressions of first-of-month dates (scalar subqueries are
    fine); no row when either is null. -#}
{% macro month_spine(first_month, last_month) -%}
    with recursive

    spine (month_start_on) as (

        select cast({{ first_month }} as date) as month_start_on
        union all
        select cast({{ dbt.dateadd('month', 1, 'spine.month_start_on') }} as date) as month_start_on
        from spine
        where spine.month_start_on < cast({{ last_month }} as date)

    )

    select month_start_on from spine
    where month_start_on is not null
{%- endmacro %}
