{#- Whole days from `start_at` to `end_at` (timestamps), portable across warehouses. -#}
{% macro days_between(start_at, end_at) -%}
    {{ return(adapter.dispatch('days_between', 'trebol')(start_at, end_at)) }}
{%- endmacro %}

{% macro default__days_between(start_at, end_at) -%}
    cast(floor(extract(epoch from ({{ end_at }}) - ({{ start_at }})) / 86400) as integer)
{%- endmacro %}
