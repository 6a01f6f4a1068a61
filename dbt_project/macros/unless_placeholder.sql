{#- `value_expression`, or null when it is one of the placeholder values listed in the seed
    `placeholders_seed` (column `placeholder_column`): the "no email" / "000000000" that systems
    store when a customer gave nothing. -#}
{% macro unless_placeholder(value_expression, placeholders_seed, placeholder_column) -%}
    case
        when {{ value_expression }} in (
            select {{ placeholder_column }} from {{ ref(placeholders_seed) }}
        ) then null
        else {{ value_expression }}
    end
{%- endmacro %}
