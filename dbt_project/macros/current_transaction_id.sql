{#- SQL: the id of the PostgreSQL transaction running the statement, as a bigint (64 bits,
    epoch included, so it only grows within a server). int_identity__identifiers records it on
    the rows it derives; int_identity__shared_identifiers compares it with what it judged. -#}
{% macro current_transaction_id() -%}
    cast(cast(pg_current_xact_id() as text) as bigint)
{%- endmacro %}
