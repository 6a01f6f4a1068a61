{{ config(materialized='table') }}

-- What each record is clustered on: its rank by first sighting and a digest of its trusted
-- identifiers. The incremental int_identity__clusters keeps both per row and compares them
-- with these to find the records that changed; a table, so that the comparison reads it once
-- (the count before the build, then the build).
with

records as (

    select * from {{ ref('int_identity__records') }}

),

trusted_identifiers as (

    select * from {{ ref('int_identity__trusted_identifiers') }}

),

-- a digest of a record's trusted identifiers, independent of their order: their count and the
-- exclusive or of their 64-bit hashes (identifiers are unique per record, type and value, so
-- no two of a record's hashes cancel out)
identifier_digests as (

    select
        record_id,
        md5(
            count(*) || ':'
            || bit_xor(hashtextextended(identifier_type || ':' || identifier_value, 0))
        ) as trusted_identifiers_digest

    from trusted_identifiers
    group by record_id

),

final as (

    select
        records.record_id,
        records.source,
        records.source_id,
        records.first_seen_at,
        records.record_rank,
        coalesce(identifier_digests.trusted_identifiers_digest, md5('0:0'))
            as trusted_identifiers_digest

    from records
    left join identifier_digests
        on records.record_id = identifier_digests.record_id

)

select * from final
