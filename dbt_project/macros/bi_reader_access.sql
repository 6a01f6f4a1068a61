{#- Least privilege (README, "Least privilege"): the role bi_reader (BI tools) reads the marts and
    nothing else; the pipeline's task roles read what their tasks need. The roles, the schemas
    the pipeline writes itself (raw, activation) and the nightly target's layer schemas (owned by
    trebol_transformer, the role dbt runs as, with usage for the roles that read them) belong to
    the warehouse's migrations (plugins/trebol/warehouse/ddl.py), which run before any dbt build.
    `keep_layers_private` (on-run-start) creates the schemas this target builds (staging,
    intermediate, marts, quality, audiences as generate_schema_name names them: the exact names
    in the warehouse target, dev_staging, ... in dev) and keeps them from PUBLIC. The `grants`
    config (dbt_project.yml, customer_segments.yml) then gives SELECT on what dbt builds:
    bi_reader the marts and seeds, trebol_checker (checks, run summary) every layer,
    trebol_activation the audiences and customer_segments; and `grant_marts_usage` (on-run-end)
    bi_reader the target's marts schema. All idempotent. -#}
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
    {%- for layer in ['staging', 'intermediate', 'marts', 'quality', 'audiences'] -%}
        {%- do schemas.append(generate_schema_name(layer, none) | trim) -%}
    {%- endfor -%}
    {{ return(schemas) }}
{%- endmacro %}
