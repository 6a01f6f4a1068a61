{{ config(materialized='table') }}

-- The identifiers that join records (the edges of the identity graph): every identifier of a
-- record but the values too shared to trust (int_identity__shared_identifiers). A record that
-- carries a shared strong identifier (a family email) keeps only its strong identifiers: its
-- weak ones (handles, names) could point at the wrong member of the family. A table, analyzed
-- once built: the incremental int_identity__clusters reads it by record and by value.
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

final as (

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

)

select * from final
