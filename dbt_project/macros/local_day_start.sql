{#- The first moment (timestamptz) of a calendar date in the business timezone. -#}
{% macro local_day_start(date_expression) -%}
    {{ return(adapter.dispatch('local_day_start', 'trebol')(date_expression)) }}
{%- endmacro %}

{% macro default__local_day_start(date_expression) -%}
    (cast({{ date_expression }} as timestamp) at time zone '{{ var("business_timezone") }}')
{%- endmacro %}
