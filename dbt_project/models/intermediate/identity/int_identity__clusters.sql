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

-- Connected components of the identity graph: records joined by a trusted identifier
-- (int_identity__trusted_identifiers) are one person. Each cluster is named after its key record,
-- its oldest record (earliest first_seen_at, then source and id), so a cluster keeps its key as
-- it grows, and when two clusters merge the older key survives.
--
-- Incremental: a night re-clusters only the clusters its changes touch. Each row keeps what its
-- record was clustered on (its first sighting and a digest of its trusted identifiers, from
-- int_identity__record_states); a record that is new, gone, or whose first sighting or trusted
-- identifiers changed is a change. The clusters touched are the previous clusters of the changed
-- records and of every record that now shares a trusted identifier with one; their records are
-- clustered again, as a whole rebuild would: no link leaves that set (a link between two
-- untouched records was there before, within one untouched cluster), so the keys are those of a
-- full rebuild (tests/integration/test_identity.py compares them). Gone records' rows are
-- deleted after (post-hook, macro delete_clusters_of_gone_records).
--
-- The changes are counted before the build (run_query). When more records changed than the
-- share var('identity_recluster_all_above_changed_share') of all records (a night after an
-- upgrade, a backfill far back), every record is clustered again, as in a first build: the
-- touched-cluster path does more work per record (an earlier form, its states computed in CTEs,
-- ran over 5.5 minutes at 1 M people with every record changed, against 70 s for the whole
-- graph; with the states a table, at 200,000 people, 7.4 s against 6.1 s). So is a table made
-- before the model was incremental (no state columns; dbt adds them). A share of 1 or more
-- skips the count: always the touched clusters (a table without the state columns gets them
-- empty first: pre-hook, macro add_cluster_state_columns; every record is then a change).
--
-- keyed_at: since when the record holds its customer key. A record clustered for the first time
-- (a first build, a new record) is keyed at its first sighting; one clustered again under the
-- same key record keeps its date; one moved to another key record (a merge, a split) is keyed at
-- the run's as-of moment, or, in a backfill (an earlier as-of moment), at the newest keying
-- recorded. fct_transactions re-keys the lines of the records keyed since shortly before its
-- newest loaded change, instead of comparing every line's key with the crosswalk.
{%- set import_ctes %}

record_states as (

    select * from {{ ref('int_identity__record_states') }}

),

trusted_identifiers as (

    select * from {{ ref('int_identity__trusted_identifiers') }}

)
{%- endset %}
{%- set changed_records_ctes %}

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

)
{%- endset %}
{%- set max_changed_share = var('identity_recluster_all_above_changed_share') %}
{%- set recluster_touched_only = is_incremental() and max_changed_share >= 1 %}
{%- if is_incremental() and execute and max_changed_share < 1 %}
    {#- a table made before the model was incremental has no state to compare: every record -#}
    {%- set previous_columns = adapter.get_columns_in_relation(this) | map(attribute='name') %}
    {%- if 'trusted_identifiers_digest' in previous_columns %}
        {%- set counts = run_query(
            'with ' ~ import_ctes ~ ',' ~ changed_records_ctes
            ~ ' select (select count(*) from changed_records), (select count(*) from record_states)'
        ) %}
        {%- set recluster_touched_only = counts.columns[0].values()[0]
            <= max_changed_share * counts.columns[1].values()[0] %}
    {%- endif %}
{%- endif %}
with
{{ import_ctes }},

{% if recluster_touched_only %}
{{ changed_records_ctes }},

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
-- (through the values, not record by record)
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

reclustered_identifiers as (

    select trusted_identifiers.*

    from trusted_identifiers
    inner join reclustered_records
        on trusted_identifiers.record_id = reclustered_records.record_id

),

{% else %}
{%- if is_incremental() %}

previous_clusters as (

    select * from {{ this }}

),
{%- endif %}

reclustered_records as (

    select * from record_states

),

reclustered_identifiers as (

    select * from trusted_identifiers

),

{% endif %}

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

clustered_records as (

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

),
{%- if is_incremental() %}

-- a backfill (an earlier as-of moment) dates the keys it moves no earlier than the newest keying
-- recorded: fct_transactions, which re-keys the lines of the records keyed since shortly before
-- its newest loaded change, then finds them even if it failed in that backfill
newest_keying as (

    select max(keyed_at) as keyed_at
    from previous_clusters

),
{%- endif %}

final as (

    select
        clustered_records.*,
        {%- if is_incremental() %}
        case
            when previous_clusters.record_id is null
                then coalesce(clustered_records.first_seen_at, {{ as_of_at() }})
            when clustered_records.key_record_id = previous_clusters.key_record_id
                then previous_clusters.keyed_at
            else greatest({{ as_of_at() }}, newest_keying.keyed_at)
        end as keyed_at
        {%- else %}
        coalesce(clustered_records.first_seen_at, {{ as_of_at() }}) as keyed_at
        {%- endif %}

    from clustered_records
    {%- if is_incremental() %}
    left join previous_clusters
        on clustered_records.record_id = previous_clusters.record_id
    cross join newest_keying
    {%- endif %}

)

select * from final
