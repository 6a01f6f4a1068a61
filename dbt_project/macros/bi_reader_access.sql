{#- Least privilege (README, "Least privilege" and "BI tools"): BI tools read the marts and the
    reference seeds and nothing else: bi_pii_reader every column, bi_reader (whose member
    bi_pii_reader is) all but the direct identifiers; the pipeline's task roles read what their
    tasks need. The roles, the schemas the pipeline writes itself (raw, activation) and the
    nightly target's layer schemas (owned by trebol_transformer, the role dbt runs as, with usage
    for the roles that read them) belong to the warehouse's migrations
    (plugins/trebol/warehouse/ddl.py), which run before any dbt build. `keep_layers_private`
    (on-run-start) creates the schemas this target builds (staging, intermediate, marts, quality,
    audiences, reference, internal as generate_schema_name names them: the exact names in the
    warehouse target, dev_staging, ... in dev) and keeps them from PUBLIC. The `grants` config
    (dbt_project.yml, the marts' yml) then gives SELECT on what dbt builds: bi_reader the marts
    without direct identifiers and the reference seeds, bi_pii_reader the marts with them,
    trebol_checker (checks, run summary) every layer, trebol_activation the audiences and
    customer_segments; `grant_bi_reader_columns` (a post-hook of every mart) bi_reader the other
    columns of a mart with direct identifiers; and `grant_marts_usage` (on-run-end) bi_reader the
    target's marts and reference schemas. All idempotent. -#}
{% macro keep_layers_private() -%}
    {% for schema in private_schemas() %}
    create schema if not exists {{ adapter.quote(schema) }};
    revoke all on schema {{ adapter.quote(schema) }} from public;
    {% endfor %}
{%- endmacro %}

{% macro grant_marts_usage(role='bi_reader') -%}
    grant usage on schema {{ adapter.quote(generate_schema_name('marts', none)) }},
        {{ adapter.quote(generate_schema_name('reference', none)) }}
        to {{ adapter.quote(role) }}
{%- endmacro %}

{#- The schemas this target builds, kept from PUBLIC. -#}
{% macro private_schemas() -%}
    {%- set schemas = [] -%}
    {%- for layer in ['staging', 'intermediate', 'marts', 'quality', 'audiences', 'reference',
                      'internal'] -%}
        {%- do schemas.append(generate_schema_name(layer, none) | trim) -%}
    {%- endfor -%}
    {{ return(schemas) }}
{%- endmacro %}

{#- The model's columns that are direct identifiers of a person (names, emails, phones, postal
    codes, the source systems' ids of their records): config meta direct_identifier: true in its
    yml. -#}
{% macro direct_identifier_columns() -%}
    {%- set names = [] -%}
    {%- for name, column in model.columns.items() -%}
        {%- set meta = column.get('config', {}).get('meta', {}) or column.get('meta', {}) -%}
        {%- if meta.get('direct_identifier') -%}
            {%- do names.append(name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}

{#- Post-hook of every mart: bi_reader reads a mart whole through the grants config, unless some of
    its columns are direct identifiers; then its grants config names bi_pii_reader instead, and
    this grants bi_reader the other columns (column privileges: a BI tool lists only the columns
    it may read, information_schema.columns; `select *` is refused). In the model's transaction,
    before dbt's grants: the rebuilt table is never readable whole, nor unreadable, by bi_reader.
    The revoke first drops a whole-table grant an earlier build gave (and the column grants with
    it), so a column that became an identifier is no longer readable. -#}
{% macro grant_bi_reader_columns(role='bi_reader') -%}
    {%- set identifiers = direct_identifier_columns() -%}
    {%- if identifiers -%}
        {%- if role in (config.get('grants') or {}).get('select', []) -%}
            {{ exceptions.raise_compiler_error(model.name ~ ": " ~ identifiers | join(', ')
                ~ " are direct identifiers (meta direct_identifier), yet its grants config gives "
                ~ role ~ " the whole table: name bi_pii_reader instead") }}
        {%- endif -%}
        {%- set readable = [] -%}
        {%- for name in model.columns if name not in identifiers -%}
            {%- do readable.append(adapter.quote(name)) -%}
        {%- endfor -%}
        revoke select on {{ this }} from {{ adapter.quote(role) }};
        grant select ({{ readable | join(', ') }}) on {{ this }} to {{ adapter.quote(role) }}
    {%- endif -%}
{%- endmacro %}
