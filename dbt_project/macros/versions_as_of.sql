{#- A record's version as of the run's as-of moment, for the raw table of a source that keeps
    every version (sources.yml version_column: one row per key and version, each dated by the
    loader's `_available_from`, the moment a run begins to load it: the start of the day its file
    is dated, or a database row's cursor). Of the versions available before the as-of moment,
    the newest (by the version column; an empty version is the oldest); a record whose every
    version is later does not exist yet. The source CTE of a staging model selects from it, so
    staging keeps one row per record, whatever later corrections raw holds (a backfill sees what
    a clean run of its date saw). `relation` is the source(), `key_columns` its primary key.
    A staging view whose records other views look up by key (tickets, ticket lines, order
    lines) selects from it as a derived table, not an import CTE: PostgreSQL flattens such a view
    into the query that joins it and finds the versions through raw's key index (nested loop);
    written with a CTE, it read every version of every record first (at 200,000 people, the
    increment of fct_transactions took 23 s that way, 7 s since). -#}
{% macro versions_as_of(relation, key_columns, version_column) -%}
select versions.*
from {{ relation }} as versions
where
    versions._available_from < {{ as_of_at() }}
    and not exists (
        select 1
        from {{ relation }} as newer_versions
        where
            {% for key_column in key_columns -%}
            newer_versions.{{ key_column }} = versions.{{ key_column }}
            and {% endfor -%}
            newer_versions._available_from < {{ as_of_at() }}
            and (
                newer_versions.{{ version_column }} > versions.{{ version_column }}
                or (
                    versions.{{ version_column }} is null
                    and newer_versions.{{ version_column }} is not null
                )
            )
    )
{%- endmacro %}
