with

-- each record as of the run's as-of moment: its newest version available then (raw keeps all)
source as (

    {{ versions_as_of(source('crm', 'crm_cases'), ['case_id'], 'updated_at') }}

),

renamed as (

    select
        cast(case_id as varchar) as case_id,
        cast(contact_id as varchar) as contact_id,
        cast(opened_at as timestamp with time zone) as opened_at,
        cast(channel as varchar) as case_channel,
        cast(reason as varchar) as case_reason,
        cast(status as varchar) as case_status,
        cast(resolved_at as timestamp with time zone) as resolved_at,
        cast(compensation_amount as numeric(14, 2)) as compensation_amount,
        cast(updated_at as timestamp with time zone) as source_updated_at,
        cast(_batch_id as varchar) as load_batch_id

    from source

)

select * from renamed
