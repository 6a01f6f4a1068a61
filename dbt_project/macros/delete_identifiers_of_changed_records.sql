{#- Pre-hook of the incremental int_identity__identifiers: delete the rows of the records that are
    gone from int_identity__records or whose digest (macro identifier_record_digests: the
    record's columns, an account's emails and postal codes, and the rules) is no longer the one
    their rows were derived with; the model's select then derives the identifiers of every
    record left without rows. A table made before the model
    was incremental gets the digest column first, empty: every row goes, every record is derived
    again, as in a first build; one made before derived_in_transaction gets that column (its
    rows then go with the digests: the rules changed). Nothing on a first build or a full
    refresh. -#}
{% macro delete_identifiers_of_changed_records() -%}
    {%- if is_incremental() -%}
alter table {{ this }} add column if not exists record_digest text;
alter table {{ this }} add column if not exists derived_in_transaction bigint;
-- each record's digest computed once (in the join's condition, it would be once per row here)
with record_digests as materialized (

    {{ identifier_record_digests(ref('int_identity__records'),
        ref('int_identity__account_order_details')) }}

)

delete from {{ this }} as identifiers
where not exists (
    select
    from record_digests
    where record_digests.record_id = identifiers.record_id
        and record_digests.record_digest = identifiers.record_digest
)
    {%- endif -%}
{%- endmacro %}
