{#- Post-hook of segment_history: drop daily snapshots older than the retention window before the
    newest date held (never the first day of a month). Relative to the data, not the clock, so a
    backfill of an old day keeps it only if it is a month start. -#}
{% macro prune_segment_history() -%}
    delete from {{ this }}
    where extract(day from as_of_date) <> 1
        and as_of_date < (
            select max(as_of_date) - {{ var('segment_history_daily_retention_days') }}
            from {{ this }}
        )
{%- endmacro %}
