{#- OVERRIDE of dbt's `generate_schema_name` (dbt-core 1.11 with dbt-adapters 1.24.5:
    dbt/include/global_project/macros/get_custom_name/get_custom_schema.sql, whose default
    always writes `<target.schema>_<custom schema>`). A project macro of this name replaces it
    for every model, seed, snapshot and test.

    Why: in the targets listed in var `exact_schema_targets` (the nightly target `warehouse`) the
    layers land in schemas named exactly for them (staging, intermediate, marts): those schemas
    are the warehouse's contract with BI tools, the pipeline's Python code (GX suites, CLV fit,
    activation) and the bi_reader grants. Any other target (`dev`, see profiles.yml) keeps
    dbt's default, prefixed with its own schema (dev_staging, dev_intermediate, dev_marts), so a
    developer's build never writes to the production schemas. A node without a custom schema
    goes to the target's schema in both cases, as upstream. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif target.name in var('exact_schema_targets') -%}
        {{ custom_schema_name | trim }}
    {%- else -%}
        {{ target.schema }}_{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
