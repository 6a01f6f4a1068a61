{#- Pre-hook of a contracted incremental model with check constraints (fct_transactions): give a
    table made before a check was declared the checks it lacks, by name. dbt writes a contract's
    constraints only when it creates the table (a first build, a full refresh), and an
    incremental run inserts into the table as it is. Adding a check reads the table's rows once;
    a row that breaks it fails the run, naming the constraint. Nothing when the table is new or
    has them all. -#}
{% macro add_missing_check_constraints() -%}
{%- set checks = model.constraints | selectattr('type', 'equalto', 'check') | list -%}
{%- if checks -%}
do $add_missing_check_constraints$
declare
    target regclass := to_regclass('{{ this.schema }}.{{ this.identifier }}');
begin
    if target is null then
        return;
    end if;
    {%- for check in checks %}
    if not exists (select from pg_constraint
                   where conrelid = target and conname = '{{ check.name }}') then
        alter table {{ this }} add constraint {{ check.name }} check ({{ check.expression }});
    end if;
    {%- endfor %}
end
$add_missing_check_constraints$
{%- endif -%}
{%- endmacro %}
