{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['identifier_type', 'identifier_value'],
        pre_hook=["{% if is_incremental() %}alter table {{ this }} add column if not exists
            identifiers_judged_through bigint, add column if not exists judged_under_rules
            text{% endif %}"],
        post_hook=["delete from {{ this }} where shared_reason is null"]
    )
}}

-- Guardrail audit: identifier values too shared to join records (rules in seed identifier_types).
--
-- Incremental: whether a value is shared depends only on the identifiers of the records that
-- hold it. A value is judged again when a record took it or when one of its records changed
-- (int_identity__identifiers derives a changed record's rows again, so the value has a row
-- derived since the last run: derived_in_transaction above identifiers_judged_through), or when
-- it was shared: a record that drops a value, or goes, can only make it less shared, so a value
-- that was not shared and has no new row is still not. The judged values replace their rows
-- (delete+insert by value); those no longer shared come out with no reason, and the post-hook
-- deletes them. So the table holds the shared values a full rebuild gives (tests/integration/
-- test_identity.py compares them). A first build, a full refresh, an empty table, a table of
-- an earlier release (the pre-hook adds the columns, empty) or one judged under other rules
-- (judged_under_rules: this model's code and its macros, macro identifier_rules_fingerprint)
-- judge every value; so does a warehouse restored into another server, whose transaction ids
-- start again below the ones recorded, and a new guardrail in the seed identifier_types (the
-- identifiers' digest holds the seed's rows: every record's identifiers are derived again).
-- At 200,000 people (2,083,292 identifiers, 1,192,807 values), an increment judged 72,748
-- values: the model took 2.7-3.0 s, against 5.4-5.9 s judging them all (docs/benchmarks.md).
{%- set rules = identifier_rules_fingerprint() %}
with

identifiers as (

    select * from {{ ref('int_identity__identifiers') }}

),

identifier_types as (

    select * from {{ ref('identifier_types') }}

),

{% if is_incremental() %}
previously_shared as (

    select * from {{ this }}

),

-- none when a value was judged under other rules (a release that changed this model)
last_judged as (

    select
        case
            when bool_and(judged_under_rules = '{{ rules }}')
                then max(identifiers_judged_through)
        end as transaction_id

    from previously_shared

),

values_to_judge as (

    select
        identifier_type,
        identifier_value
    from previously_shared

    union

    select
        identifiers.identifier_type,
        identifiers.identifier_value

    from identifiers
    cross join last_judged
    where last_judged.transaction_id is null
        or identifiers.derived_in_transaction > last_judged.transaction_id
        or {{ current_transaction_id() }} <= last_judged.transaction_id

),

judged_identifiers as (

    select identifiers.*

    from identifiers
    inner join values_to_judge
        on identifiers.identifier_type = values_to_judge.identifier_type
        and identifiers.identifier_value = values_to_judge.identifier_value

),
{% else %}
judged_identifiers as (

    select * from identifiers

),
{% endif %}

-- count(*): a record holds a value once (int_identity__identifiers is unique per record, type and
-- value; tested), and a count(distinct) sorts every group's rows (measured at 200,000 people)
identifier_counts as (

    select
        identifier_type,
        identifier_value,
        count(*) as record_count

    from judged_identifiers
    group by identifier_type, identifier_value

),

-- the judged identifiers of a type that conflicts with another (the values of that type their
-- records carry are counted below); in an increment materialized, so that the count joins each
-- record's identifiers by record and type at once (joined by record alone, then filtered by
-- type, the join made 1.6 million rows for 216,000 at 200,000 people: 4.0 s against 3.0 s for
-- the model's select); in a first build, of every identifier, the plan that makes no copy is
-- faster (6.3 s against 7.3 s)
judged_identifiers_of_conflicting_types as {% if is_incremental() %}materialized {% endif %}(

    select
        judged_identifiers.record_id,
        judged_identifiers.identifier_type,
        judged_identifiers.identifier_value,
        identifier_types.conflicts_with

    from judged_identifiers
    inner join identifier_types
        on judged_identifiers.identifier_type = identifier_types.identifier_type
    where identifier_types.conflicts_with is not null

),

-- for each value, how many distinct values of its conflicting type its records carry
conflicting_values as (

    select
        judged_identifiers_of_conflicting_types.identifier_type,
        judged_identifiers_of_conflicting_types.identifier_value,
        count(distinct other_identifiers.identifier_value) as conflicting_value_count

    from judged_identifiers_of_conflicting_types
    inner join identifiers as other_identifiers
        on judged_identifiers_of_conflicting_types.record_id = other_identifiers.record_id
        and judged_identifiers_of_conflicting_types.conflicts_with
        = other_identifiers.identifier_type
    group by
        judged_identifiers_of_conflicting_types.identifier_type,
        judged_identifiers_of_conflicting_types.identifier_value

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

{% if is_incremental() %}
-- a value shared before that no record holds any more: judged too (no reason: its row goes)
unheld_values as (

    select
        previously_shared.identifier_type,
        previously_shared.identifier_value,
        0 as record_count,
        0 as conflicting_value_count,
        cast(null as varchar) as conflicts_with,
        false as is_over_record_limit,
        false as has_conflicting_values

    from previously_shared
    left join identifier_counts
        on previously_shared.identifier_type = identifier_counts.identifier_type
        and previously_shared.identifier_value = identifier_counts.identifier_value
    where identifier_counts.identifier_value is null

),

all_judged as (

    select * from judged
    union all
    select * from unheld_values

),
{% else %}
all_judged as (

    select * from judged

),
{% endif %}

final as (

    select
        identifier_type,
        identifier_value,
        cast(record_count as integer) as record_count,
        cast(conflicting_value_count as integer) as conflicting_value_count,
        case
            when is_over_record_limit then 'held by more records than the limit'
            when has_conflicting_values then 'its records carry different ' || conflicts_with || 's'
        end as shared_reason,
        (
            select max(identifiers.derived_in_transaction) from identifiers
        ) as identifiers_judged_through,
        cast('{{ rules }}' as varchar) as judged_under_rules

    from all_judged
    {#- a judged value no longer shared replaces its row with none (the post-hook deletes it) #}
    {%- if not is_incremental() %}
    where is_over_record_limit or has_conflicting_values
    {%- endif %}

)

select * from final
