{#- Least privilege for BI tools: the role bi_reader reads the marts and nothing else.
    `ensure_bi_reader_role` (on-run-start) creates the role when missing (NOLOGIN: BI users are
    granted it) and keeps other layers private; the marts' and seeds' `grants` config then gives it
    SELECT on every table dbt builds there, and `grant_marts_usage` (on-run-end) the schema.
    All idempotent. -#}
{% macro ensure_bi_reader_role(role='bi_reader') -%}
    do $$
    begin
        if not exists (select from pg_catalog.pg_roles where rolname = '{{ role }}') then
            create role {{ adapter.quote(role) }} nologin;
        end if;
    end
    $$;
    {% for schema in ['raw', 'staging', 'intermediate', 'marts', 'activation'] %}
    create schema if not exists {{ adapter.quote(schema) }};
    revoke all on schema {{ adapter.quote(schema) }} from public;
    {% endfor %}
{%- endmacro %}

{% macro grant_marts_usage(role='bi_reader') -%}
    grant usage on schema marts to {{ adapter.quote(role) }}
{%- endmacro %}
