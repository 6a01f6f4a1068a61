{#- Post-hook of the incremental fct_transactions: after a backfill, the lines of source versions
    later than the as-of moment go (a transaction that did not exist yet, or the return of an
    order returned later). Every transaction that existed then was just written again as of the
    run's date, so the table holds exactly the lines a clean run of that date writes; the next
    run of a later date re-reads everything changed since (its lookback window starts before the
    as-of moment). A nightly run of the newest date finds nothing to delete. -#}
{% macro delete_transactions_after_as_of() -%}
    delete from {{ this }}
    where source_updated_at >= {{ as_of_at() }}
{%- endmacro %}
