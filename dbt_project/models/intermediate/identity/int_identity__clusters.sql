{{ config(materialized='table') }}

-- Connected components of the identity graph: records joined by a shared, trusted identifier are
-- one person. Each cluster is named after its key record, its oldest record (earliest
-- first_seen_at, then source and id), so a cluster keeps its key as it grows, and when two clusters
-- merge the older key survives. A record that carries a shared strong identifier (a family email)
-- is joined only by its own strong identifiers: its weak ones (handles, names) could point at the
-- wrong member of the family.
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

-- each value links its records to one anchor (its oldest record): a star, not every pair
identifier_anchors as (

    select
        identifier_type,
        identifier_value,
        min(record_rank) as anchor_rank

    from trusted_identifiers
    group by identifier_type, identifier_value

),

graph_links as (

    select distinct
        trusted_identifiers.record_id as node_id,
        anchors.record_id as linked_node_id

    from trusted_identifiers
    inner join identifier_anchors
        on trusted_identifiers.identifier_type = identifier_anchors.identifier_type
        and trusted_identifiers.identifier_value = identifier_anchors.identifier_value
    inner join records as anchors
        on identifier_anchors.anchor_rank = anchors.record_rank
    where trusted_identifiers.record_rank <> identifier_anchors.anchor_rank

),

graph_nodes as (

    select
        record_id as node_id,
        record_rank as node_rank

    from records

),

components as (

    {{ connected_components('graph_nodes', 'graph_links') }}

),

final as (

    select
        records.record_id,
        records.source,
        records.source_id,
        key_records.record_id as key_record_id,
        cast({{ customer_key('key_records.source', 'key_records.source_id') }} as varchar)
            as customer_key

    from records
    inner join components
        on records.record_id = components.node_id
    inner join records as key_records
        on components.component_rank = key_records.record_rank

)

select * from final
