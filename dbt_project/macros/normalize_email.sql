{#- An email as compared across systems: trimmed, lower case, and null when empty. -#}
{% macro normalize_email(email_expression) -%}
    {{ return(adapter.dispatch('normalize_email', 'trebol')(email_expression)) }}
{%- endmacro %}

{% macro default__normalize_email(email_expression) -%}
    nullif(lower(trim({{ email_expression }})), '')
{%- endmacro %}
