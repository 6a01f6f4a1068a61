{#- One-off migration, a run-operation: NOT called by the partitioned_snapshot materialization
    (which stops, naming this operation, when it meets a history that is not partitioned).

        dbt run-operation partitioned_snapshot_convert_plain_history --args '{model_name: segment_history}'

    (with the build's --target and profile) converts the history of a partitioned_snapshot model
    that an earlier version of the project kept as a plain table (segment_history before
    e1cfd84, dbt's incremental materialization) into the partitioned history the
    materialization keeps: the history is created from the model's contract (columns,
    constraints, primary key), one partition per value of its `partition_by` column in
    `<schema>_partitions`, every row moved (the contract's columns the plain table has; the
    others stay null), and the views that read the plain table read the new history (same view,
    so its grants and the views on it stay). All in one transaction: on any error nothing
    changes. Idempotent: a history already partitioned, or none, is left as it is. Remove this
    macro once every warehouse has been converted. -#}
{% macro partitioned_snapshot_convert_plain_history(model_name) -%}
  {%- set nodes = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
                  | selectattr('name', 'equalto', model_name) | list -%}
  {%- if nodes | length != 1 or nodes[0].config.materialized != 'partitioned_snapshot' -%}
    {{ exceptions.raise_compiler_error(model_name ~ ': no partitioned_snapshot model of that name') }}
  {%- endif -%}
  {%- set node = nodes[0] -%}
  {%- set partition_by = node.config.partition_by -%}
  {%- set relation = api.Relation.create(database=node.database, schema=node.schema,
                                         identifier=node.alias, type='table') -%}
  {%- set partitions_schema = relation.schema ~ '_partitions' -%}
  {%- set kinds = run_query(
      "select c.relkind from pg_class as c inner join pg_namespace as n on n.oid = c.relnamespace"
      ~ " where n.nspname = '" ~ relation.schema ~ "' and c.relname = '" ~ relation.identifier ~ "'"
    ).rows -%}
  {%- if kinds | length == 0 -%}
    {{ log(relation ~ ': no history, nothing to convert', info=true) }}
  {%- elif kinds[0][0] == 'p' -%}
    {{ log(relation ~ ': already partitioned, nothing to convert', info=true) }}
  {%- elif kinds[0][0] != 'r' -%}
    {{ exceptions.raise_compiler_error(relation ~ ': not a table (relkind ' ~ kinds[0][0] ~ ')') }}
  {%- else -%}
    {%- set legacy_relation = make_backup_relation(relation, 'table') -%}
    {%- do adapter.drop_relation(legacy_relation) -%}
    {%- do adapter.rename_relation(relation, legacy_relation) -%}
    {%- do adapter.create_schema(api.Relation.create(database=relation.database,
                                                     schema=partitions_schema)) -%}
    {%- call statement('create_history') -%}
      create table {{ relation }}
      {{ table_columns_and_constraints_from(node.columns, node.constraints) }}
      partition by list ({{ adapter.quote(partition_by) }})
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
    {%- for name in node.columns if name in legacy_columns -%}
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
    {%- do adapter.commit() -%}
    {{ log(relation ~ ': converted to one partition per ' ~ partition_by ~ ' ('
           ~ held.rows | length ~ ' snapshots)', info=true) }}
  {%- endif -%}
{%- endmacro %}
