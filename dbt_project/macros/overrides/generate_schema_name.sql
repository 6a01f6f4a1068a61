{#- Layers land in schemas named exactly for them (staging, intermediate, marts), not
    prefixed with the target schema: the schemas are the warehouse's contract with BI tools. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
