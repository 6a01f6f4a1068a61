-- The crosswalk: every source record that stands for a person, and the customer it belongs to.
with

clusters as (

    select * from {{ ref('int_identity__clusters') }}

),

records as (

    select * from {{ ref('int_identity__records') }}

),

final as (

    select
        cast(clusters.source as varchar) as source,
        cast(clusters.source_id as varchar) as source_id,
        cast(clusters.customer_key as varchar) as customer_key,
        clusters.record_id = clusters.key_record_id as is_key_record,
        records.first_seen_at,
        {{ local_date(as_of_at()) }} as as_of_date

    from clusters
    inner join records
        on clusters.record_id = records.record_id

)

select * from final
