with

contact_versions as (

    select * from {{ ref('stg_crm__contacts') }}

),

placeholder_emails as (

    select * from {{ ref('placeholder_emails') }}

),

-- the snapshot of day S shows the state at the end of S; "as of" D is the end of day D - 1
contacts_as_of as (

    select *

    from contact_versions
    where valid_from < {{ local_date(as_of_at()) }}
        and (valid_to is null or valid_to >= {{ local_date(as_of_at()) }})

),

contacts_with_emails as (

    select
        contacts_as_of.*,
        {{ normalize_email('contacts_as_of.email') }} as normalized_email

    from contacts_as_of

),

final as (

    select
        contacts_with_emails.contact_id,
        contacts_with_emails.first_name,
        contacts_with_emails.last_name,
        contacts_with_emails.email,
        case
            when placeholder_emails.email is null then contacts_with_emails.normalized_email
        end as normalized_email,
        contacts_with_emails.phone,
        contacts_with_emails.postal_code,
        contacts_with_emails.has_marketing_consent,
        contacts_with_emails.consent_updated_at,
        contacts_with_emails.unsubscribed_at,
        contacts_with_emails.valid_from

    from contacts_with_emails
    left join placeholder_emails
        on contacts_with_emails.normalized_email = placeholder_emails.email

)

select * from final
