{#- Least privilege for BI tools: the role bi_reader reads the marts and nothing else.
    The role, and the schemas the pipeline writes itself (raw, activation), belong to the
    warehouse's migrations (plugins/trebol/warehouse/ddl.py), which run before any dbt build.
    `keep_layers_private` (on-run-start) creates the schemas this target builds (staging,
    intermediate, marts, quality as generate_schema_name names them: the exact names in the warehouse
    target, dev_staging, ... in dev) and keeps them from PUBLIC. The marts' and seeds' `grants`
    config then gives bi_reader SELECT on every table dbt builds there, and `grant_marts_usage`
    (on-run-end) the target's marts schema. All idempotent. -#}
{% macro keep_layers_private() -%}
    {% for schema in private_schemas() %}
    create schema if not exists {{ adapter.quote(schema) }};
    revoke all on schema {{ adapter.quote(schema) }} from public;
    {% endfor %}
{%- endmacro %}

{% macro grant_marts_usage(role='bi_reader') -%}
    grant usage on schema {{ adapter.quote(generate_schema_name('marts', none)) }}
        to {{ adapter.quote(role) }}
{%- endmacro %}

{#- The schemas this target builds, kept from PUBLIC. -#}
{% macro private_schemas() -%}
    {%- set schemas = [] -%}
    {%- for layer in ['staging', 'intermediate', 'marts', 'quality'] -%}
        {%- do schemas.append(generate_schema_name(layer, none) | trim) -%}
    {%- endfor -%}
    {{ return(schemas) }}
{%- endmacro %}
