{#- The rows of a raw table that the batches of each run loaded, with the run's as-of date (the
    local date of the interval end, in the business timezone): one run's rows are one day's
    batch for Great Expectations. `loaded` is the raw table's source(), `loader_source` the name
    the loader audits it under (sources.yml). -#}
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

)

select * from final
{%- endmacro %}
