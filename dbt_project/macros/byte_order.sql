{#- `byte_order(expression)`: the expression compared by its bytes rather than by the database's
    linguistic collation. For keys whose order means nothing (customer keys are hex digests),
    grouping millions of rows on them is then a plain byte comparison: on PostgreSQL with a libc
    collation such as C.UTF-8 that makes the sort of fct_transactions by customer about a third
    faster. The result carries that collation: `default_order(expression)` gives a column back
    the database's default before it leaves the model. -#}
{% macro byte_order(expression) -%}
    {{ return(adapter.dispatch('byte_order', 'trebol')(expression)) }}
{%- endmacro %}

{% macro default__byte_order(expression) -%}
    {{ expression }}
{%- endmacro %}

{% macro postgres__byte_order(expression) -%}
    ({{ expression }}) collate "C"
{%- endmacro %}

{% macro default_order(expression) -%}
    {{ return(adapter.dispatch('default_order', 'trebol')(expression)) }}
{%- endmacro %}

{% macro default__default_order(expression) -%}
    {{ expression }}
{%- endmacro %}

{% macro postgres__default_order(expression) -%}
    ({{ expression }}) collate "default"
{%- endmacro %}
