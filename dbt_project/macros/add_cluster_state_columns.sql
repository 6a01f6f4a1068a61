{#- Pre-hook of the incremental int_identity__clusters: give a table made before it was
    incremental (a plain table of record, source, ids and keys) the columns its touched-clusters
    select reads, empty. dbt's on_schema_change adds new columns only after that select has
    run. With the default share var the model sees the missing columns before the select and
    clusters every record instead; this matters when the share var is 1 or more (no count,
    always the touched clusters): empty, the columns differ from every record's state, so that
    run clusters every record again, and the keys are a full rebuild's. keyed_at (when the
    record took its key) is added as of the run for every row: fct_transactions then re-keys
    every line once, whatever an earlier release left in it. Nothing when the table is new or
    has them already. -#}
{% macro add_cluster_state_columns() -%}
alter table if exists {{ this }}
    add column if not exists first_seen_at timestamp with time zone,
    add column if not exists trusted_identifiers_digest varchar,
    add column if not exists keyed_at timestamp with time zone default {{ as_of_at() }};
alter table if exists {{ this }} alter column keyed_at drop default
{%- endmacro %}
