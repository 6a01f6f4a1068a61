with

-- each record as of the run's as-of moment: its newest version available then (raw keeps all)
source as (

    {{ versions_as_of(
        source('mailchimp', 'mailchimp_opt_outs'), ['list_id', 'email_address'], 'last_changed'
    ) }}

),

renamed as (

    select
        cast({{ normalize_email('email_address') }} as varchar) as email,
        cast(list_id as varchar) as list_id,
        cast(status as varchar) as opt_out_status,
        cast(last_changed as timestamp with time zone) as opted_out_at,
        cast(_batch_id as varchar) as load_batch_id

    from source

)

select * from renamed
