{#- OVERRIDE of dbt-postgres 1.11.0 `postgres__create_table_as`
    (dbt/include/postgres/macros/adapters.sql), the macro dbt's `create_table_as` dispatches to
    on PostgreSQL for every table model. Its helper `table_columns_and_constraints_from` below is
    dbt-adapters 1.24.5 `table_columns_and_constraints`
    (dbt/include/global_project/macros/relations/column/columns_spec_ddl.sql) taking the columns
    and constraints as arguments. On a dbt upgrade (require-dbt-version in dbt_project.yml),
    compare both with the new versions.

    What changes: for a table with an enforced contract, its keys (primary key and unique
    constraints, column or model level) are added once the rows are in; otherwise as upstream.
    Why (measured): dbt-postgres creates such a table with every constraint and then inserts the
    rows, so PostgreSQL inserts each row into each key's index one by one; a key added afterwards
    is built with one sort of the rows. customer_rfmt's 868,881 rows (make bench data, 2-core
    machine, 3 runs each): inserted then keyed 2.9 to 3.5 s, inserted into the keyed table 4.9
    to 5.6 s (99c8ff3 recorded 1.7 s against 4.6 s for 870,000 customers). The table ends with the
    same constraints, and a duplicate still fails the build, in the same transaction, before the
    table replaces the previous one. -#}
{% macro postgres__create_table_as(temporary, relation, sql) -%}
  {%- set unlogged = config.get('unlogged', default=false) -%}
  {%- set sql_header = config.get('sql_header', none) -%}
  {%- set contract_config = config.get('contract') -%}
  {%- set is_contracted = contract_config.enforced and not temporary -%}

  {{ sql_header if sql_header is not none }}

  create {% if temporary -%}
    temporary
  {%- elif unlogged -%}
    unlogged
  {%- endif %} table {{ relation }}
  {% if contract_config.enforced %}
    {{ get_assert_columns_equivalent(sql) }}
  {% endif -%}
  {% if is_contracted -%}
    {%- set table_parts = contract_without_keys() -%}
    {{ table_columns_and_constraints_from(table_parts['columns'], table_parts['constraints']) }} ;
    insert into {{ relation }} (
      {{ adapter.dispatch('get_column_names', 'dbt')() }}
    )
    {%- set sql = get_select_subquery(sql) %}
  {% else %}
    as
  {% endif %}
  (
    {{ sql }}
  );
  {%- if is_contracted %}
  {%- for key in adapter.render_raw_model_constraints(raw_constraints=table_parts['keys']) %}
  alter table {{ relation }} add {{ key }};
  {%- endfor %}
  {%- endif %}
{%- endmacro %}

{#- The model's contract split in three: its columns with their constraints but the keys, its
    model-level constraints but the keys, and the keys (primary key, unique) as model-level
    constraints. -#}
{% macro contract_without_keys() %}
  {%- set key_types = ['primary_key', 'unique'] -%}
  {%- set columns = {} -%}
  {%- set constraints = [] -%}
  {%- set keys = [] -%}
  {%- for name, column in model['columns'].items() -%}
    {%- set column_constraints = [] -%}
    {%- for constraint in column.get('constraints', []) -%}
      {%- if constraint['type'] in key_types -%}
        {%- do keys.append({'type': constraint['type'], 'columns': [column['name']]}) -%}
      {%- else -%}
        {%- do column_constraints.append(constraint) -%}
      {%- endif -%}
    {%- endfor -%}
    {%- set column_without_keys = {} -%}
    {%- do column_without_keys.update(column) -%}
    {%- do column_without_keys.update({'constraints': column_constraints}) -%}
    {%- do columns.update({name: column_without_keys}) -%}
  {%- endfor -%}
  {%- for constraint in model.get('constraints', []) -%}
    {%- if constraint['type'] in key_types -%}
      {%- do keys.append(constraint) -%}
    {%- else -%}
      {%- do constraints.append(constraint) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return({'columns': columns, 'constraints': constraints, 'keys': keys}) }}
{% endmacro %}

{#- dbt's table_columns_and_constraints, for the given columns and model-level constraints. -#}
{% macro table_columns_and_constraints_from(columns, constraints) %}
  {%- set raw_column_constraints = adapter.render_raw_columns_constraints(raw_columns=columns) -%}
  {%- set raw_model_constraints = adapter.render_raw_model_constraints(raw_constraints=constraints) -%}
    (
    {% for c in raw_column_constraints -%}
      {{ c }}{{ "," if not loop.last or raw_model_constraints }}
    {% endfor %}
    {% for c in raw_model_constraints -%}
        {{ c }}{{ "," if not loop.last }}
    {% endfor -%}
    )
{% endmacro %}
