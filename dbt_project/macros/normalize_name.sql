{#- A personal name as compared and shown: outer whitespace trimmed, inner runs of whitespace
    made one space, null when empty. Case and accents are kept (they are the person's). -#}
{% macro normalize_name(name_expression) -%}
    {{ return(adapter.dispatch('normalize_name', 'trebol')(name_expression)) }}
{%- endmacro %}

{% macro default__normalize_name(name_expression) -%}
    nullif(regexp_replace(trim({{ name_expression }}), '\s+', ' ', 'g'), '')
{%- endmacro %}
