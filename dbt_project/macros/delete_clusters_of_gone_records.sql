{#- Post-hook of the incremental int_identity__clusters: delete the rows of records that are no
    longer in int_identity__record_states, the records the model clusters (the incremental
    select re-clusters their clusters' other records, but a delete+insert only replaces the
    rows it selects). -#}
{% macro delete_clusters_of_gone_records() -%}
delete from {{ this }} as clusters
where not exists (
    select
    from {{ ref('int_identity__record_states') }} as record_states
    where record_states.record_id = clusters.record_id
)
{%- endmacro %}
