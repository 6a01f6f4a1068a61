{#- `column_name` is unique in `model` for every value the rows of the run's batches hold (macro
    batches_of_this_run; the model has the column load_batch_id): the keys the run loaded, each
    looked up in the whole view, so a new version that duplicates an older row's key fails. The
    other keys are the ones earlier runs tested; the view shows them as it did then. When the
    run's batches are bulk (a first build), every key. The rows it returns are those of dbt's
    `unique` test (unique_field, n_records). Why (measured at 200,000 people, one increment):
    `unique` read the whole views of tickets and orders again every night (4.2 and 5.2 s, on the
    path to identity); this looks up the day's keys (13 and 28 ms). -#}
{% test unique_keys_of_this_run(model, column_name) %}
{%- set run_batches = batches_of_this_run() %}

with

tested_rows as (

    select {{ column_name }} as unique_field

    from {{ model }}
    {%- if not run_batches.is_bulk %}
    -- an array, not a semi-join: its keys look the view's raw versions up by key
    where {{ column_name }} = any(array(
        select keys_of_this_run.{{ column_name }}
        from {{ model }} as keys_of_this_run
        where keys_of_this_run.load_batch_id = any({{ run_batches.literal }})
    ))
    {%- endif %}

)

select
    unique_field,
    count(*) as n_records

from tested_rows
where unique_field is not null
group by unique_field
having count(*) > 1

{% endtest %}
