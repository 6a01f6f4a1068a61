{#- A query of each record's digest in int_identity__identifiers (record_id, record_digest): md5
    of what its identifiers are derived from, the record's columns the model reads (of
    `records`: int_identity__records or a CTE of it), a web shop account's emails and postal
    codes (of `account_order_details`: int_identity__account_order_details or a CTE of it) and
    the rules: the model's code, the code of the macros it calls, the var it reads (as text, at
    render time: macro identifier_rules_fingerprint) and the rows of the seed identifier_types
    (the types, and their guardrails: a new limit derives every record's identifiers again, so
    that int_identity__shared_identifiers judges every value again). The incremental model
    keeps it per row; its pre-hook (macro
    delete_identifiers_of_changed_records) compares it to find the records to derive again.
    Rendered in the model's context (its SQL and its pre-hook): `model` is that model. -#}
{% macro identifier_record_digests(records, account_order_details) -%}
select
    {{ records }}.record_id,
    md5(
        row(
            {{ records }}.source,
            {{ records }}.first_name,
            {{ records }}.last_name,
            {{ records }}.email,
            {{ records }}.phone,
            {{ records }}.postal_code,
            order_details.combinations
        )::text
        || '|{{ identifier_rules_fingerprint() }}|'
        || (
            select string_agg(
                cast(row(identifier_type, strength, max_records, conflicts_with) as text), ','
                order by identifier_type
            )
            from {{ ref('identifier_types') }}
        )
    ) as record_digest

from {{ records }}
left join (
    select
        record_id,
        string_agg(
            row(email, shipping_postal_code)::text, ',' order by email, shipping_postal_code
        ) as combinations
    from {{ account_order_details }}
    group by record_id
) as order_details
    on {{ records }}.record_id = order_details.record_id
{%- endmacro %}

{#- The md5 of int_identity__identifiers' code, of every macro it calls (as dbt lists them:
    the model's `depends_on.macros` in the graph, this project's and dbt's) and of the var
    identity_min_email_local_part_length: a new release that changes how identifiers are derived
    changes every record's digest, so the next run derives them all again. -#}
{% macro identifier_rules_fingerprint() -%}
    {%- set parts = [model.raw_code, var('identity_min_email_local_part_length') | string] -%}
    {#- the graph is empty while dbt parses the project, and has no node of a unit test -#}
    {%- set node = graph.get('nodes', {}).get(model.unique_id) if execute else none -%}
    {%- set macro_ids = node.depends_on.macros if node else [] -%}
    {%- for macro_id in macro_ids | sort -%}
        {%- set package, name = macro_id.split('.')[1:3] -%}
        {%- set found = context.get(name) if package == project_name
            else context.get(package, {}).get(name) -%}
        {%- do parts.append(macro_id ~ '\n' ~ (found.macro.macro_sql
            if found is not none and found.macro is defined else '')) -%}
    {%- endfor -%}
    {{- local_md5(parts | join('\n')) -}}
{%- endmacro %}
