{#- The load batches of the run's data interval, for the data tests that test what the run
    loaded (the placeholder `__batches_of_this_run__` of a test's `where`:
    macros/overrides/get_where_subquery.sql; the generic test unique_keys_of_this_run): the batch
    ids the loader audited for the interval that ends at the run's as-of moment (source
    loader.load_audit, any source; on a first build, every batch), as a text[] literal, and
    whether those batches loaded a tenth or more of every row loaded so far (`is_bulk`: a first
    build, or a backfill of its date), where looking each of their keys up costs more than reading
    the whole view (measured at 200,000 people: unique_keys_of_this_run on a first build's keys
    8.7 s, against 2.4 s for the whole view). Read before the test (run_query), for the reason the
    override gives. While dbt parses: no batch. -#}
{% macro batches_of_this_run() -%}
    {%- if not execute -%}
        {%- do return({'literal': "'{}'::text[]", 'is_bulk': false}) -%}
    {%- endif -%}
    {%- set listed = run_query(
        "select coalesce(array_agg(distinct batch_id) filter (where interval_end = " ~ as_of_at()
        ~ "), '{}')::text, coalesce(sum(rows_loaded) filter (where interval_end = " ~ as_of_at()
        ~ "), 0) * 10 >= coalesce(nullif(sum(rows_loaded), 0), 1) from "
        ~ source('loader', 'load_audit')
    ) -%}
    {%- set row = listed.rows[0] -%}
    {#- the array's text form, quoted by PostgreSQL; as a string literal, quotes doubled -#}
    {%- do return({
        'literal': "'" ~ (row[0] | replace("'", "''")) ~ "'::text[]",
        'is_bulk': row[1],
    }) -%}
{%- endmacro %}
