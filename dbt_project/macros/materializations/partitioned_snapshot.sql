{#- Materialization `partitioned_snapshot` (PostgreSQL): a history of snapshots, one list
    partition per value of config `partition_by` (a date column). The model's rows are one
    snapshot, all with the same value; a run replaces that value's partition whole and leaves the
    others as they are, so a run or a backfill of date D rewrites exactly D.

    The rows go into a new table shaped like the history (its columns, not-null and check
    constraints), which then replaces D's partition: no temporary copy of the rows and no delete,
    and the key's index is built once with a sort when the table is attached. Partitions live in
    the schema `<schema>_partitions` (no grants: readers query the history itself). Dropping old
    partitions (retention) is a post-hook's job.

    The history is created with the model's contract (its columns, constraints and primary key)
    on the first run; a contract column it lacks is added (nullable: older snapshots have no
    value). A history that is a plain table (built by the earlier incremental materialization) is
    converted once: its rows move into partitions, and the views that read it read the new one. -#}
{% materialization partitioned_snapshot, adapter='postgres' %}

  {%- set partition_by = config.require('partition_by') -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set staging_relation = make_intermediate_relation(target_relation) -%}
  {%- set partitions_schema = target_relation.schema ~ '_partitions' -%}
  {%- set grant_config = config.get('grants') -%}

  {{ drop_relation_if_exists(load_cached_relation(staging_relation)) }}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {%- do adapter.create_schema(api.Relation.create(database=target_relation.database,
                                                   schema=partitions_schema)) -%}

  {%- if existing_relation is none -%}
    {%- call statement('create_history') -%}
      {{ partitioned_snapshot_history_sql(target_relation, partition_by) }}
    {%- endcall -%}
  {%- else -%}
    {%- do partitioned_snapshot_adopt(target_relation, partition_by, partitions_schema) -%}
  {%- endif -%}

  {%- call statement('main') -%}
    {{ get_assert_columns_equivalent(sql) }}
    create table {{ staging_relation }}
      (like {{ target_relation }} including defaults including constraints);
    insert into {{ staging_relation }} ({{ adapter.dispatch('get_column_names', 'dbt')() }})
    {{ get_select_subquery(sql) }};
  {%- endcall -%}

  {#- the snapshot's value, from its first row: attaching the partition checks every row holds it -#}
  {%- set first_row = run_query('select ' ~ partitioned_snapshot_value_text(partition_by) ~ ' from '
                                ~ staging_relation ~ ' limit 1') -%}
  {%- set value = first_row.rows[0][0] if first_row.rows | length > 0 else none -%}

  {%- if value is not none -%}
    {%- set partition_relation = partitioned_snapshot_partition(target_relation, partitions_schema, value) -%}
    {%- call statement('replace_partition') -%}
      drop table if exists {{ partition_relation }};
      alter table {{ staging_relation }} set schema {{ adapter.quote(partitions_schema) }};
      alter table {{ partition_relation.incorporate(path={'identifier': staging_relation.identifier}) }}
        rename to {{ adapter.quote(partition_relation.identifier) }};
      alter table {{ target_relation }}
        attach partition {{ partition_relation }} for values in ('{{ value }}');
      analyze {{ partition_relation }}
    {%- endcall -%}
  {%- else -%}
    {{ log(model.name ~ ': no rows, no snapshot replaced', info=true) }}
    {%- call statement('drop_staging') -%}
      drop table {{ staging_relation }}
    {%- endcall -%}
  {%- endif -%}

  {{ run_hooks(post_hooks, inside_transaction=True) }}

  {%- set should_revoke = should_revoke(existing_relation, full_refresh_mode=False) -%}
  {%- do apply_grants(target_relation, grant_config, should_revoke=should_revoke) -%}
  {%- do persist_docs(target_relation, model) -%}

  -- `COMMIT` happens here
  {{ adapter.commit() }}

  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}

{% endmaterialization %}


{#- The empty history: the contract's columns and constraints, partitioned by list. -#}
{% macro partitioned_snapshot_history_sql(relation, partition_by) -%}
    create table {{ relation }}
    {{ get_table_columns_and_constraints() }}
    partition by list ({{ adapter.quote(partition_by) }})
{%- endmacro %}


{#- A date column's value as ISO text (YYYY-MM-DD whatever the session's DateStyle): the
    partition's bound and the digits of its name. -#}
{% macro partitioned_snapshot_value_text(partition_by) -%}
    to_char({{ adapter.quote(partition_by) }}, 'YYYY-MM-DD')
{%- endmacro %}


{#- The partition of one value: `<model>_<value's digits>` in the partitions schema. -#}
{% macro partitioned_snapshot_partition(relation, partitions_schema, value) -%}
  {{ return(api.Relation.create(database=relation.database, schema=partitions_schema,
                                identifier=relation.identifier ~ '_' ~ (value | replace('-', '')),
                                type='table')) }}
{%- endmacro %}


{#- An existing history: converted from a plain table if it is one, and given the contract's
    columns it lacks. -#}
{% macro partitioned_snapshot_adopt(relation, partition_by, partitions_schema) -%}
  {%- set kind = run_query(
      "select c.relkind from pg_class as c inner join pg_namespace as n on n.oid = c.relnamespace"
      ~ " where n.nspname = '" ~ relation.schema ~ "' and c.relname = '" ~ relation.identifier ~ "'"
    ).rows[0][0] -%}
  {%- if kind != 'p' -%}
    {%- set legacy_relation = make_backup_relation(relation, 'table') -%}
    {%- do drop_relation_if_exists(load_cached_relation(legacy_relation)) -%}
    {%- do adapter.rename_relation(relation, legacy_relation) -%}
    {%- call statement('create_history') -%}
      {{ partitioned_snapshot_history_sql(relation, partition_by) }}
    {%- endcall -%}
    {%- set held = run_query('select distinct ' ~ partitioned_snapshot_value_text(partition_by)
                             ~ ' from ' ~ legacy_relation ~ ' order by 1') -%}
    {%- for row in held.rows -%}
      {%- call statement('create_partition') -%}
        create table {{ partitioned_snapshot_partition(relation, partitions_schema, row[0]) }}
          partition of {{ relation }} for values in ('{{ row[0] }}')
      {%- endcall -%}
    {%- endfor -%}
    {%- set legacy_columns = adapter.get_columns_in_relation(legacy_relation) | map(attribute='name') | list -%}
    {%- set moved = [] -%}
    {%- for name in model['columns'] if name in legacy_columns -%}
      {%- do moved.append(adapter.quote(name)) -%}
    {%- endfor -%}
    {%- set moved_columns = moved | join(', ') -%}
    {#- views reading the plain table (they followed its rename) read the history again: same
        definition, same view (its grants and the views on it stay) -#}
    {%- set dependent_views = run_query(
        "select distinct rewrite.ev_class::regclass::text, pg_get_viewdef(rewrite.ev_class)"
        ~ " from pg_depend as dependency"
        ~ " inner join pg_rewrite as rewrite on rewrite.oid = dependency.objid"
        ~ " where dependency.refobjid = '" ~ legacy_relation.include(database=false)
        ~ "'::regclass and rewrite.ev_class <> dependency.refobjid") -%}
    {%- call statement('move_rows') -%}
      insert into {{ relation }} ({{ moved_columns }})
      select {{ moved_columns }} from {{ legacy_relation }};
      {%- for view_name, definition in dependent_views.rows %}
      create or replace view {{ view_name }} as
        {{ definition.strip().rstrip(';') | replace(legacy_relation.identifier, relation.identifier) }};
      {%- endfor %}
      drop table {{ legacy_relation }}
    {%- endcall -%}
    {{ log(model.name ~ ': converted to one partition per ' ~ partition_by ~ ' ('
           ~ held.rows | length ~ ' snapshots)', info=true) }}
  {%- else -%}
    {%- set held_columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
    {%- for name, column in model['columns'].items() if name not in held_columns -%}
      {%- call statement('add_column') -%}
        alter table {{ relation }} add column {{ adapter.quote(name) }} {{ column['data_type'] }}
      {%- endcall -%}
    {%- endfor -%}
  {%- endif -%}
{%- endmacro %}
