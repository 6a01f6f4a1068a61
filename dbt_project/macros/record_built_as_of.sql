{#- Post-hook of the quality models the raw suites read: the relation's comment records the as-of
    moment of the run it was built for (`built as of <ISO timestamp>`), which the check task
    compares with its own run (trebol.quality.gate.built_for_another_run) before trusting what
    the relation holds: a view left from an earlier run (a dbt_build that failed before it) would
    show that run's batches, or none. -#}
{% macro record_built_as_of() -%}
    comment on {{ 'view' if config.get('materialized') == 'view' else 'table' }} {{ this }}
        is 'built as of {{ as_of_at_text() }}'
{%- endmacro %}
