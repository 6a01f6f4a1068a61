{#- The statistics of a table model, once built: the post-hook of every model
    (dbt_project.yml); nothing for a view. A table dbt has just created has none until
    autovacuum gets to it (a minute or more later), and the models built after it in the same run
    were planned on PostgreSQL's defaults (seen at 200,000 people: the dbt_build_value task took
    8-10 s in four increments, and once stayed over 7 minutes in service_recovery_queue, started
    as autovacuum was still analyzing the tables dbt had just built for it). ANALYZE reads a
    sample (30,000 rows at most), whatever the table's size. -#}
{% macro analyze_built_table() -%}
    {%- if config.get('materialized') in ['table', 'incremental'] -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}
