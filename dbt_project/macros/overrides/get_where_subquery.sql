{#- OVERRIDE of dbt-adapters 1.24.5 `default__get_where_subquery`
    (dbt/include/global_project/macros/materializations/tests/where_subquery.sql), the macro a
    data test wraps the relation it tests in when its `where` config is set. dbt documents this
    override as the way to give `where` logic of its own ("Custom logic" in the `where` config's
    reference). On a dbt upgrade, compare with the new version.

    What changes: the placeholder `__batches_of_this_run__` in a test's `where` becomes an array
    of the batch ids the loader loaded for the run's data interval (macro batches_of_this_run: on
    a first build, all of them), for `load_batch_id = any(__batches_of_this_run__)`; otherwise as
    upstream.
    Why (measured): the tests of the transaction-line views read the whole view again, every
    night: at 1 million people (make bench, SCALE=full) 55 such tests took 587 s of the 811 s of
    dbt_build's tests, each one unnesting the JSON of 4.6 million order versions. With the
    placeholder they test the lines the run loaded, each line once: fct_transactions, the table
    that holds every line, is still tested whole. The per-row tests of the staging views of
    tickets, orders, members and contacts (not null, relationships, formats) do the same; the key
    tests of tickets, orders and members look up the keys of the run's rows in the whole view
    (generic test unique_keys_of_this_run; at 200,000 people, one increment: the data tests of
    those four views 22.2 s, 13.4 s since, and the unique tests of tickets and orders 9.4 s of it
    before they looked keys up).
    Why an array and not `in (select …)`: PostgreSQL plans an `in (select …)` as a semi-join and
    left it above the view's version-as-of anti-join and the JSON unnest (every order version
    read, 14 s a test at 1 million people); an array filters the raw table's scan, through its
    index on _batch_id (60 ms).
    Why a literal array, read before the test (run_query), and not `= any(array(select …))`:
    an array computed by the query is searched element by element for every row, where
    PostgreSQL (14 and later) hashes a constant one. A first build's interval holds every batch
    of every source: at 200,000 people (make bench) 4,392 batch ids, 2 million ticket lines, and
    each of the five tests of stg_pos__ticket_lines took about 60 s (330 of dbt_build's 441 test
    seconds). -#}
{% macro postgres__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- set run_batches = "'{}'::text[]" -%}
        {%- if '__batches_of_this_run__' in where -%}
            {%- set run_batches = batches_of_this_run().literal -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where | replace('__batches_of_this_run__', run_batches) }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
