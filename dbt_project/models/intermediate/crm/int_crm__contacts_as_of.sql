with

contact_versions as (

    select * from {{ ref('stg_crm__contacts') }}

),

-- the snapshot of day S shows the state at the end of S; "as of" D is the end of day D - 1
contacts_as_of as (

    select
        shop_customer_id,
        email,
        first_name,
        last_name,
        has_marketing_consent,
        unsubscribed_at

    from contact_versions
    where valid_from < {{ local_date(as_of_at()) }}
        and (valid_to is null or valid_to >= {{ local_date(as_of_at()) }})

)

select * from contacts_as_of
