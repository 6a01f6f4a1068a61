{{ config(severity='error') }}

-- segment_history holds one row per customer for the run's date: the rows this run wrote (each
-- earlier date was tested by the run that wrote it, so the test does not grow with the history).
select
    as_of_date,
    customer_key,
    count(*) as row_count

from {{ ref('segment_history') }}
where as_of_date = {{ local_date(as_of_at()) }}
group by as_of_date, customer_key
having count(*) > 1
