{#- Pre-hook of the incremental int_identity__clusters: give a table made before it was
    incremental (a plain table of record, source, ids and keys) the columns its incremental
    select reads, empty. dbt's on_schema_change adds new columns only after that select has
    run, and the select reads them from the previous table, so the first run after an upgrade
    would fail on the missing column. Empty, they differ from every record's state: that run
    clusters every record again, as a full rebuild would. Nothing when the table is new or has
    them already. -#}
{% macro add_cluster_state_columns() -%}
alter table if exists {{ this }}
    add column if not exists first_seen_at timestamp with time zone,
    add column if not exists trusted_identifiers_digest varchar
{%- endmacro %}
