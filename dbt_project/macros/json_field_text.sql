{#- The text of field `field_name` of a JSON object (null when absent). -#}
{% macro json_field_text(json_expression, field_name) -%}
    {{ return(adapter.dispatch('json_field_text', 'trebol')(json_expression, field_name)) }}
{%- endmacro %}

{% macro default__json_field_text(json_expression, field_name) -%}
    ({{ json_expression }} ->> '{{ field_name }}')
{%- endmacro %}
