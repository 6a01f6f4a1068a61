{#- Post-hook of segment_history: drop the daily snapshots (partitions) older than the retention
    window before the newest date held, never the first day of a month and never the run's own
    date (its checks read it after this hook: a backfill of an old day keeps its snapshot until
    a later run of the newest date prunes it, unless it is a month start). Relative to the data,
    not the clock. Each partition's date is its list bound, read from the catalog (no snapshot
    is read). -#}
{% macro prune_segment_history() -%}
    {%- set expired = [] -%}
    {%- if execute -%}
        {%- set expired_query -%}
            with partitions as (
                select
                    partitions.relid::regclass::text as partition_name,
                    substring(pg_get_expr(tables.relpartbound, tables.oid) from '''([0-9-]+)''')::date
                        as as_of_date
                from pg_partition_tree('{{ this }}'::regclass) as partitions
                inner join pg_class as tables
                    on partitions.relid = tables.oid
                where partitions.isleaf
            )
            select partition_name
            from partitions
            where extract(day from as_of_date) <> 1
                and as_of_date <> {{ local_date(as_of_at()) }}
                and as_of_date < (
                    select max(as_of_date) - {{ var('segment_history_daily_retention_days') }}
                    from partitions
                )
            order by as_of_date
        {%- endset -%}
        {%- set expired = run_query(expired_query).columns[0].values() -%}
    {%- endif -%}
    {%- for partition_name in expired %}
    drop table {{ partition_name }};
    {%- else %}
    {#- a hook must run a statement: with nothing to drop, one that says so #}
    select 'no daily snapshot past its retention' as pruned
    {%- endfor %}
{%- endmacro %}
