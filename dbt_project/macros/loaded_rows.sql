{#- The rows of a raw table that the batches of the run loaded (the run dbt builds the view for:
    its batches' interval ends at the as-of moment), with the run's as-of date (the local date
    of the interval end, in the business timezone): one day's batch for Great Expectations.
    Only the run's batches: Great Expectations lists the days of a daily batch definition with a
    `select distinct` over the whole relation before it reads one, and over every run's batches
    that evaluated the join of every raw row with the audit, each night again (measured at
    200,000 people: most of check_raw_batches' 14-17 s per increment; at 1 million, 84 s). The
    view's comment records the run it was built for (macro record_built_as_of), which the check
    task compares with its own run (trebol.quality.gate) before trusting it. `loaded` is the raw
    table's source(), `loader_source` the name the loader audits it under (sources.yml). -#}
{% macro loaded_rows(loaded, loader_source) -%}
with

load_audit as (

    select * from {{ source('loader', 'load_audit') }}

),

loaded as (

    select * from {{ loaded }}

),

final as (

    select
        {{ local_date('load_audit.interval_end') }} as as_of_date,
        loaded.*

    from loaded
    inner join load_audit
        on
            load_audit.source = '{{ loader_source }}'
            and loaded._batch_id = load_audit.batch_id
    where load_audit.interval_end = {{ as_of_at() }}

)

select * from final
{%- endmacro %}
