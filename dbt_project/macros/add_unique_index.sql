{#- Post-hook of an incremental model whose rows are unique on `columns`: a unique index on
    them, when the table has none on exactly those columns (a first build, a full refresh, a
    table of an earlier release). Built after a first build's rows, then kept up to date by
    PostgreSQL as each run writes: a row written twice fails the run, naming the index and the
    key, where a data test would read every row again every night. Unnamed: PostgreSQL names it,
    so a full refresh, whose old table still holds the old index when the hook runs, gets its own. -#}
{% macro add_unique_index(columns) -%}
do $add_unique_index$
begin
    if not exists (
        select
        from pg_index
        where indrelid = '{{ this }}'::regclass
            and indisunique
            and indkey::text = (
                select string_agg(cast(attnum as text), ' ' order by ordinality)
                from unnest(array[{{ quoted_list(columns) }}]) with ordinality as wanted (name)
                inner join pg_attribute
                    on attrelid = '{{ this }}'::regclass and attname = wanted.name
            )
    ) then
        create unique index on {{ this }} ({{ columns | join(', ') }});
    end if;
end
$add_unique_index$
{%- endmacro %}
