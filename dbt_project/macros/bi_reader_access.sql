{#- Least privilege for BI tools: the role bi_reader reads the marts and nothing else.
    `ensure_bi_reader_role` (on-run-start) creates the role when missing (NOLOGIN: BI users are
    granted it) and keeps the layers private: the schemas this target builds (staging,
    intermediate, marts as generate_schema_name names them: the exact names in the warehouse
    target, dev_staging, ... in dev) and, in a target writing the exact names, the warehouse's
    raw and activation schemas (written by the pipeline, not by dbt; a dev build leaves them
    alone). The marts' and seeds' `grants` config then gives bi_reader SELECT on every table dbt
    builds there, and `grant_marts_usage` (on-run-end) the target's marts schema. All
    idempotent. -#}
{% macro ensure_bi_reader_role(role='bi_reader') -%}
    do $$
    begin
        if not exists (select from pg_catalog.pg_roles where rolname = '{{ role }}') then
            create role {{ adapter.quote(role) }} nologin;
        end if;
    end
    $$;
    {% for schema in private_schemas() %}
    create schema if not exists {{ adapter.quote(schema) }};
    revoke all on schema {{ adapter.quote(schema) }} from public;
    {% endfor %}
{%- endmacro %}

{% macro grant_marts_usage(role='bi_reader') -%}
    grant usage on schema {{ adapter.quote(generate_schema_name('marts', none)) }}
        to {{ adapter.quote(role) }}
{%- endmacro %}

{#- The schemas kept from PUBLIC by this target, in order: raw and activation (only where the
    layers have their exact names), then the layers dbt builds. -#}
{% macro private_schemas() -%}
    {%- set schemas = ['raw'] if target.name in var('exact_schema_targets') else [] -%}
    {%- for layer in ['staging', 'intermediate', 'marts'] -%}
        {%- do schemas.append(generate_schema_name(layer, none) | trim) -%}
    {%- endfor -%}
    {%- if target.name in var('exact_schema_targets') -%}
        {%- do schemas.append('activation') -%}
    {%- endif -%}
    {{ return(schemas) }}
{%- endmacro %}
