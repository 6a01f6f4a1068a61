{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='record_id',
        on_schema_change='append_new_columns',
        pre_hook=["{{ add_cluster_state_columns() }}"],
        post_hook=["{{ delete_clusters_of_gone_records() }}"]
    )
}}

-- Connected components of the identity graph: records joined by a shared, trusted identifier are
-- one person. Each cluster is named after its key record, its oldest record (earliest
-- first_seen_at, then source and id), so a cluster keeps its key as it grows, and when two clusters
-- merge the older key survives. A record that carries a shared strong identifier (a family email)
-- is joined only by its own strong identifiers: its weak ones (handles, names) could point at the
-- wrong member of the family.
--
-- Incremental: a run re-clusters only the clusters its changes touch. Each row keeps what its
-- record was clustered on (its first sighting and a digest of its trusted identifiers); a record
-- that is new, gone, or whose first sighting or trusted identifiers changed is a change. The
-- clusters touched are the previous clusters of the changed records and of every record that
-- now shares a trusted identifier with one; their records are clustered again, as a whole
-- rebuild would: no link leaves that set (a link between two untouched records was there
-- before, within one untouched cluster), so the keys are those of a full rebuild
-- (tests/integration/test_identity.py compares them). Gone records' rows are deleted after
-- (post-hook, macro delete_clusters_of_gone_records); a table made before the model was
-- incremental gets the two columns first (pre-hook, macro add_cluster_state_columns).
with

records as (

    select * from {{ ref('int_identity__records') }}

),

identifiers as (

    select * from {{ ref('int_identity__identifiers') }}

),

shared_identifiers as (

    select * from {{ ref('int_identity__shared_identifiers') }}

),

identifier_types as (

    select * from {{ ref('identifier_types') }}

),

records_with_shared_strong_identifiers as (

    select distinct identifiers.record_id

    from identifiers
    inner join shared_identifiers
        on identifiers.identifier_type = shared_identifiers.identifier_type
        and identifiers.identifier_value = shared_identifiers.identifier_value
    inner join identifier_types
        on identifiers.identifier_type = identifier_types.identifier_type
    where identifier_types.strength = 'strong'

),

trusted_identifiers as (

    select
        identifiers.record_id,
        identifiers.identifier_type,
        identifiers.identifier_value,
        records.record_rank

    from identifiers
    inner join records
        on identifiers.record_id = records.record_id
    inner join identifier_types
        on identifiers.identifier_type = identifier_types.identifier_type
    left join shared_identifiers
        on identifiers.identifier_type = shared_identifiers.identifier_type
        and identifiers.identifier_value = shared_identifiers.identifier_value
    left join records_with_shared_strong_identifiers
        on identifiers.record_id = records_with_shared_strong_identifiers.record_id
    where shared_identifiers.identifier_value is null
        and (identifier_types.strength = 'strong'
            or records_with_shared_strong_identifiers.record_id is null)

),

-- what each record is clustered on: its first sighting and its trusted identifiers (a digest:
-- their count and the sum of their 64-bit hashes, independent of order)
record_states as (

    select
        records.record_id,
        records.source,
        records.source_id,
        records.first_seen_at,
        records.record_rank,
        md5(
            count(trusted_identifiers.identifier_value) || ':'
            || coalesce(sum(cast(hashtextextended(
                trusted_identifiers.identifier_type || ':'
                || trusted_identifiers.identifier_value, 0
            ) as numeric)), 0)
        ) as trusted_identifiers_digest

    from records
    left join trusted_identifiers
        on records.record_id = trusted_identifiers.record_id
    group by
        records.record_id,
        records.source,
        records.source_id,
        records.first_seen_at,
        records.record_rank

),

{% if is_incremental() %}

previous_clusters as (

    select * from {{ this }}

),

changed_records as (

    select record_states.record_id

    from record_states
    left join previous_clusters
        on record_states.record_id = previous_clusters.record_id
    where previous_clusters.record_id is null
        or previous_clusters.first_seen_at is distinct from record_states.first_seen_at
        or previous_clusters.trusted_identifiers_digest
        is distinct from record_states.trusted_identifiers_digest

    union

    select previous_clusters.record_id

    from previous_clusters
    left join record_states
        on previous_clusters.record_id = record_states.record_id
    where record_states.record_id is null

),

-- the trusted identifiers the changed records hold now
changed_values as (

    select distinct
        trusted_identifiers.identifier_type,
        trusted_identifiers.identifier_value

    from trusted_identifiers
    inner join changed_records
        on trusted_identifiers.record_id = changed_records.record_id

),

-- the changed records, and the records that share a trusted identifier with one of them now
-- (through the values, not record by record: a night of many changes, an upgrade or a
-- backfill, would otherwise pair every holder of a value with every other)
records_near_changes as (

    select changed_records.record_id
    from changed_records

    union

    select trusted_identifiers.record_id

    from trusted_identifiers
    inner join changed_values
        on trusted_identifiers.identifier_type = changed_values.identifier_type
        and trusted_identifiers.identifier_value = changed_values.identifier_value

),

touched_clusters as (

    select distinct previous_clusters.key_record_id

    from previous_clusters
    inner join records_near_changes
        on previous_clusters.record_id = records_near_changes.record_id

),

reclustered_record_ids as (

    select record_id
    from records_near_changes

    union

    select previous_clusters.record_id

    from previous_clusters
    inner join touched_clusters
        on previous_clusters.key_record_id = touched_clusters.key_record_id

),

reclustered_records as (

    select record_states.*

    from record_states
    inner join reclustered_record_ids
        on record_states.record_id = reclustered_record_ids.record_id

),

{% else %}

reclustered_records as (

    select * from record_states

),

{% endif %}

reclustered_identifiers as (

    select trusted_identifiers.*

    from trusted_identifiers
    inner join reclustered_records
        on trusted_identifiers.record_id = reclustered_records.record_id

),

-- each value links its records to one anchor (its oldest record): a star, not every pair
identifier_anchors as (

    select
        identifier_type,
        identifier_value,
        min(record_rank) as anchor_rank

    from reclustered_identifiers
    group by identifier_type, identifier_value

),

graph_links as (

    select distinct
        reclustered_identifiers.record_id as node_id,
        anchors.record_id as linked_node_id

    from reclustered_identifiers
    inner join identifier_anchors
        on reclustered_identifiers.identifier_type = identifier_anchors.identifier_type
        and reclustered_identifiers.identifier_value = identifier_anchors.identifier_value
    inner join reclustered_records as anchors
        on identifier_anchors.anchor_rank = anchors.record_rank
    where reclustered_identifiers.record_rank <> identifier_anchors.anchor_rank

),

graph_nodes as (

    select
        record_id as node_id,
        record_rank as node_rank

    from reclustered_records

),

components as (

    {{ connected_components('graph_nodes', 'graph_links') }}

),

final as (

    select
        reclustered_records.record_id,
        reclustered_records.source,
        reclustered_records.source_id,
        key_records.record_id as key_record_id,
        cast({{ customer_key('key_records.source', 'key_records.source_id') }} as varchar)
            as customer_key,
        reclustered_records.first_seen_at,
        reclustered_records.trusted_identifiers_digest

    from reclustered_records
    inner join components
        on reclustered_records.record_id = components.node_id
    inner join reclustered_records as key_records
        on components.component_rank = key_records.record_rank

)

select * from final
