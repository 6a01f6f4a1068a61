{#- The calendar date of a timestamptz in the business timezone (var business_timezone). -#}
{% macro local_date(timestamp_expression) -%}
    {{ return(adapter.dispatch('local_date', 'trebol')(timestamp_expression)) }}
{%- endmacro %}

{% macro default__local_date(timestamp_expression) -%}
    cast(({{ timestamp_expression }}) at time zone '{{ var("business_timezone") }}' as date)
{%- endmacro %}
