{{ config(materialized='table') }}

-- Guardrail audit: identifier values too shared to join records (rules in seed identifier_types).
with

identifiers as (

    select * from {{ ref('int_identity__identifiers') }}

),

identifier_types as (

    select * from {{ ref('identifier_types') }}

),

-- a record holds a value once (int_identity__identifiers is unique on record, type and value), so
-- counting rows counts records: a hash aggregate, where count(distinct) sorts every identifier
identifier_counts as (

    select
        identifier_type,
        identifier_value,
        count(*) as record_count

    from identifiers
    group by identifier_type, identifier_value

),

-- each value's records and the values of its conflicting type they carry
conflicting_pairs as (

    select
        identifiers.identifier_type,
        identifiers.identifier_value,
        other_identifiers.identifier_value as conflicting_value

    from identifiers
    inner join identifier_types
        on identifiers.identifier_type = identifier_types.identifier_type
    inner join identifiers as other_identifiers
        on identifiers.record_id = other_identifiers.record_id
        and identifier_types.conflicts_with = other_identifiers.identifier_type

),

-- a value's records carry one value of the conflicting type or several: their smallest and
-- largest tell (a hash aggregate over every pair); only the values with several are counted
-- one by one
conflicting_value_ranges as (

    select
        identifier_type,
        identifier_value,
        min(conflicting_value) <> max(conflicting_value) as has_several_values

    from conflicting_pairs
    group by identifier_type, identifier_value

),

conflicting_values as (

    select
        conflicting_pairs.identifier_type,
        conflicting_pairs.identifier_value,
        count(distinct conflicting_pairs.conflicting_value) as conflicting_value_count

    from conflicting_pairs
    inner join conflicting_value_ranges
        on conflicting_pairs.identifier_type = conflicting_value_ranges.identifier_type
        and conflicting_pairs.identifier_value = conflicting_value_ranges.identifier_value
    where conflicting_value_ranges.has_several_values
    group by conflicting_pairs.identifier_type, conflicting_pairs.identifier_value

    union all

    select
        identifier_type,
        identifier_value,
        1 as conflicting_value_count

    from conflicting_value_ranges
    where not has_several_values

),

judged as (

    select
        identifier_counts.identifier_type,
        identifier_counts.identifier_value,
        identifier_counts.record_count,
        coalesce(conflicting_values.conflicting_value_count, 0) as conflicting_value_count,
        identifier_types.conflicts_with,
        identifier_counts.record_count > identifier_types.max_records as is_over_record_limit,
        coalesce(conflicting_values.conflicting_value_count, 0) > 1 as has_conflicting_values

    from identifier_counts
    inner join identifier_types
        on identifier_counts.identifier_type = identifier_types.identifier_type
    left join conflicting_values
        on identifier_counts.identifier_type = conflicting_values.identifier_type
        and identifier_counts.identifier_value = conflicting_values.identifier_value

),

final as (

    select
        identifier_type,
        identifier_value,
        cast(record_count as integer) as record_count,
        cast(conflicting_value_count as integer) as conflicting_value_count,
        case
            when is_over_record_limit then 'held by more records than the limit'
            else 'its records carry different ' || conflicts_with || 's'
        end as shared_reason

    from judged
    where is_over_record_limit or has_conflicting_values

)

select * from final
