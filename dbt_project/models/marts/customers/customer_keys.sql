{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='customer_key',
        full_refresh=false,
        on_schema_change='append_new_columns'
    )
}}

-- The register of every customer key ever issued: when it was issued (its customer's oldest
-- record), when it was last in use, and, for a key retired by a merge, the key it was merged
-- into. Keys are a pure function of the data (see int_identity__clusters); this register keeps
-- their history, so it is never rebuilt (full_refresh: false). Only the newest as-of date moves
-- it: a backfill of an earlier date leaves it as it is.
with

source_keys as (

    select * from {{ ref('customer_source_keys') }}

),

-- a key is issued on the local date of its customer's oldest record: from the data, so every
-- order of runs (clean, backfilled, re-run) gives the same date
key_first_seen as (

    select
        customer_key,
        min({{ local_date('first_seen_at') }}) as issued_on

    from source_keys
    group by customer_key

),

active_keys as (

    select
        source_keys.customer_key,
        source_keys.source as key_source,
        source_keys.source_id as key_source_id,
        key_first_seen.issued_on

    from source_keys
    inner join key_first_seen
        on source_keys.customer_key = key_first_seen.customer_key
    where source_keys.is_key_record

),

{% if is_incremental() %}

registered_keys as (

    select * from {{ this }}

),

-- a run older than the newest one already registered changes nothing
run_is_newest as (

    select
        coalesce(max(last_active_on), {{ local_date(as_of_at()) }})
            <= {{ local_date(as_of_at()) }} as is_newest

    from registered_keys

),

-- a registered key whose key record now belongs to another customer was merged into it
merged_keys as (

    select
        registered_keys.customer_key,
        registered_keys.key_source,
        registered_keys.key_source_id,
        registered_keys.issued_on,
        registered_keys.last_active_on,
        source_keys.customer_key as merged_into_customer_key,
        {{ local_date(as_of_at()) }} as merged_on

    from registered_keys
    inner join source_keys
        on registered_keys.key_source = source_keys.source
        and registered_keys.key_source_id = source_keys.source_id
    where source_keys.customer_key <> registered_keys.customer_key
        and registered_keys.merged_into_customer_key is distinct from source_keys.customer_key

),

current_keys as (

    select
        active_keys.customer_key,
        active_keys.key_source,
        active_keys.key_source_id,
        active_keys.issued_on,
        {{ local_date(as_of_at()) }} as last_active_on,
        cast(null as varchar) as merged_into_customer_key,
        cast(null as date) as merged_on

    from active_keys

),

changes as (

    select * from current_keys
    union all
    select * from merged_keys

),

final as (

    select changes.* from changes
    cross join run_is_newest
    where run_is_newest.is_newest

)

{% else %}

final as (

    select
        customer_key,
        key_source,
        key_source_id,
        issued_on,
        {{ local_date(as_of_at()) }} as last_active_on,
        cast(null as varchar) as merged_into_customer_key,
        cast(null as date) as merged_on

    from active_keys

)

{% endif %}

select * from final
