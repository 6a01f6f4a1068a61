{#- MATERIALIZATION `partitioned_snapshot` (PostgreSQL), the project's own: it overrides no dbt
    macro. It replaces, for segment_history, dbt's `incremental` materialization with
    incremental_strategy='delete+insert' (dbt-adapters 1.24.5, dbt-postgres 1.11.0: delete the
    run's date, then insert it) that the model used before e1cfd84.

    Why (measured with `dbt run --select segment_history`, 0.87 million customers, a history of
    9 to 10 daily snapshots, this 2-core machine, 3 runs each, alternating): 2.9 to 4.8 s against
    4.8 to 7.2 s for delete+insert (which had only an index on the date: its uniqueness was a
    separate data test; here the primary key is enforced). Replacing a partition deletes no row,
    so a run leaves no dead rows behind, and retention drops whole partitions.

    What it does: a history of snapshots, one list partition per value of config `partition_by`
    (a date column). The model's rows are one snapshot, all with the same value; a run replaces
    that value's partition whole and leaves the others as they are, so a run or a backfill of
    date D rewrites exactly D.

    The rows go into a new table shaped like the history (its columns, not-null and check
    constraints), which then replaces D's partition: no temporary copy of the rows and no delete,
    and the key's index is built once with a sort when the table is attached. Partitions live in
    the schema `<schema>_partitions` (no grants: readers query the history itself). Dropping old
    partitions (retention) is a post-hook's job.

    The history is created with the model's contract (its columns, constraints and primary key)
    on the first run; a contract column it lacks is added (nullable: older snapshots have no
    value). A history that is not partitioned (a plain table left by the earlier incremental
    materialization) stops the run: the one-off conversion is the run-operation
    `partitioned_snapshot_convert_plain_history` (macros/partitioned_snapshot_convert_plain_history.sql),
    never called from here. -#}
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
    {%- do partitioned_snapshot_add_columns(target_relation) -%}
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


{#- An existing history given the contract's columns it lacks (nullable: older snapshots have
    no value). A history that is not partitioned stops the run, naming the run-operation that
    converts it (macros/partitioned_snapshot_convert_plain_history.sql): one catalog look-up. -#}
{% macro partitioned_snapshot_add_columns(relation) -%}
  {%- set kind = run_query(
      "select c.relkind from pg_class as c inner join pg_namespace as n on n.oid = c.relnamespace"
      ~ " where n.nspname = '" ~ relation.schema ~ "' and c.relname = '" ~ relation.identifier ~ "'"
    ).rows[0][0] -%}
  {%- if kind != 'p' -%}
    {{ exceptions.raise_compiler_error(
        relation ~ " is not partitioned (a plain table kept by an earlier version of the project?):"
        ~ " convert it once with `dbt run-operation "
        ~ "partitioned_snapshot_convert_plain_history --args '{model_name: " ~ model.name
        ~ "}'`, then run again") }}
  {%- endif -%}
  {%- set held_columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
  {%- for name, column in model['columns'].items() if name not in held_columns -%}
    {%- call statement('add_column') -%}
      alter table {{ relation }} add column {{ adapter.quote(name) }} {{ column['data_type'] }}
    {%- endcall -%}
  {%- endfor -%}
{%- endmacro %}
