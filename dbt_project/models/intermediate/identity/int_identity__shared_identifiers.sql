{{ config(materialized='table') }}

-- Guardrail audit: identifier values too shared to join records (rules in seed identifier_types).
with

identifiers as (

    select * from {{ ref('int_identity__identifiers') }}

),

identifier_types as (

    select * from {{ ref('identifier_types') }}

),

-- count(*): a record holds a value once (int_identity__identifiers is unique per record, type and
-- value; tested), and a count(distinct) sorts every group's rows (measured at 200,000 people)
identifier_counts as (

    select
        identifier_type,
        identifier_value,
        count(*) as record_count

    from identifiers
    group by identifier_type, identifier_value

),

-- for each value, how many distinct values of its conflicting type its records carry
conflicting_values as (

    select
        identifiers.identifier_type,
        identifiers.identifier_value,
        count(distinct other_identifiers.identifier_value) as conflicting_value_count

    from identifiers
    inner join identifier_types
        on identifiers.identifier_type = identifier_types.identifier_type
    inner join identifiers as other_identifiers
        on identifiers.record_id = other_identifiers.record_id
        and identifier_types.conflicts_with = other_identifiers.identifier_type
    group by identifiers.identifier_type, identifiers.identifier_value

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
