{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook=["{{ delete_identifiers_of_changed_records() }}"],
        post_hook=["{{ add_unique_index(['record_id', 'identifier_type', 'identifier_value']) }}"]
    )
}}

-- The identifiers each record holds (the edges of the identity graph): the normalised email and
-- phone of a member or contact, every email a web shop account ordered with, the local part of
-- each email (the same handle at another provider), the name at a postal code (given name and
-- first surname without accents: legacy systems drop accents and second surnames), and the handle
-- at a postal code (an email's letters before the @, or the handles people make of their name:
-- given name and surname either way round, or initial and surname). Which types join records,
-- and their guardrails, is the seed identifier_types.
--
-- Incremental: a record's identifiers come from its row of int_identity__records and, for a web
-- shop account, its rows of int_identity__account_order_details alone, so each row keeps a
-- digest of those and of the rules (macro identifier_record_digests: this model's code, the
-- macros it calls, the var and the seed it reads). A run first deletes the rows whose
-- record is gone or whose digest changed (pre-hook, macro delete_identifiers_of_changed_records),
-- then derives the identifiers of the records left without rows: new and changed records (and
-- those that hold none, again). A rebuild gives the same rows (tests/integration/test_identity.py),
-- but for derived_in_transaction: the transaction that derived a row, which tells
-- int_identity__shared_identifiers the rows derived since it last judged the values.
--
-- A record holds an identifier once: a unique index (post-hook, macro add_unique_index) enforces
-- it as each run writes, where a data test read every row again every night (2.5 s of an
-- increment at 200,000 people, on the build's critical path).
with

all_records as (

    select * from {{ ref('int_identity__records') }}

),

all_account_order_details as (

    select * from {{ ref('int_identity__account_order_details') }}

),

identifier_types as (

    select * from {{ ref('identifier_types') }}

),

-- the records whose identifiers are derived: all of them in a first build; on a later run, those
-- the table holds no row of once the pre-hook deleted the changed records' rows
records_to_derive as (

    select all_records.*

    from all_records
    {%- if is_incremental() %}
    where not exists (
        select
        from {{ this }} as previous_identifiers
        where previous_identifiers.record_id = all_records.record_id
    )
    {%- endif %}

),

record_digests as (

    {{ identifier_record_digests('records_to_derive', 'all_account_order_details') }}

),

records as (

    select
        records_to_derive.*,
        record_digests.record_digest

    from records_to_derive
    inner join record_digests
        on records_to_derive.record_id = record_digests.record_id

),

record_emails as (

    select
        record_id,
        'email' as identifier_type,
        email as identifier_value

    from records
    where email is not null and source <> 'ecom'

),

record_phones as (

    select
        record_id,
        'phone' as identifier_type,
        phone as identifier_value

    from records
    where phone is not null

),

-- the emails and shipping postal codes of the accounts whose identifiers are derived
account_order_details as (

    select all_account_order_details.*

    from all_account_order_details
    inner join records
        on all_account_order_details.record_id = records.record_id

),

account_emails as (

    select distinct
        record_id,
        'email' as identifier_type,
        email as identifier_value

    from account_order_details
    where email is not null

),

emails as (

    select * from record_emails
    union all
    select * from account_emails

),

email_local_parts as (

    select distinct
        record_id,
        'email_local_part' as identifier_type,
        {{ dbt.split_part('identifier_value', "'@'", 1) }} as identifier_value

    from emails
    where length({{ dbt.split_part('identifier_value', "'@'", 1) }})
        >= {{ var('identity_min_email_local_part_length') }}

),

record_names_at_postal_codes as (

    select
        record_id,
        'name_postal_code' as identifier_type,
        {{ fold_accents('first_name') }} || '|'
            || {{ fold_accents(dbt.split_part('last_name', "' '", 1)) }} || '|'
            || postal_code as identifier_value

    from records
    where first_name is not null and last_name is not null and postal_code is not null

),

postal_codes as (

    select
        record_id,
        postal_code
    from records
    where postal_code is not null
    union
    select
        record_id,
        shipping_postal_code as postal_code

    from account_order_details
    where shipping_postal_code is not null

),

-- materialized: the regular expression then runs once per email, not once in the length filter
-- and again in the grouping key below, per postal code (measured at 200,000 people)
email_handles as materialized (

    select
        record_id,
        {{ letters_only(dbt.split_part('identifier_value', "'@'", 1)) }} as handle

    from emails

),

name_parts as (

    select
        record_id,
        {{ letters_only('first_name') }} as given_name,
        {{ letters_only(dbt.split_part('last_name', "' '", 1)) }} as surname

    from records
    where first_name is not null and last_name is not null

),

name_handles as (

    select
        record_id,
        given_name || surname as handle
    from name_parts
    union all
    select
        record_id,
        surname || given_name as handle
    from name_parts
    union all
    select
        record_id,
        substr(given_name, 1, 1) || surname as handle
    from name_parts

),

handles_at_postal_codes as (

    select distinct
        handles.record_id,
        'handle_postal_code' as identifier_type,
        handles.handle || '|' || postal_codes.postal_code as identifier_value

    from (
        select * from email_handles
        union all
        select * from name_handles
    ) as handles
    inner join postal_codes
        on handles.record_id = postal_codes.record_id
    where length(handles.handle) >= {{ var('identity_min_email_local_part_length') }}

),

identifiers as (

    select * from emails
    union all
    select * from record_phones
    union all
    select * from email_local_parts
    union all
    select * from record_names_at_postal_codes
    union all
    select * from handles_at_postal_codes

),

final as (

    select
        identifiers.*,
        records.record_digest,
        {{ current_transaction_id() }} as derived_in_transaction

    from identifiers
    inner join identifier_types
        on identifiers.identifier_type = identifier_types.identifier_type
    inner join records
        on identifiers.record_id = records.record_id

)

select * from final
