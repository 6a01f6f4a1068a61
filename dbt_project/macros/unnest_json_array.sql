{#- A join clause giving one row per element of a JSON array column, each element as a JSON value
    named `element_name` (read its fields with json_field_text()). Dialects differ; see dispatch. -#}
{% macro unnest_json_array(array_expression, element_name) -%}
    {{ return(adapter.dispatch('unnest_json_array', 'trebol')(array_expression, element_name)) }}
{%- endmacro %}

{% macro default__unnest_json_array(array_expression, element_name) -%}
    cross join lateral jsonb_array_elements({{ array_expression }}) as {{ element_name }}s({{ element_name }})
{%- endmacro %}
