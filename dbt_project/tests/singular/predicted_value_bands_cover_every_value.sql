{{ config(severity='error') }}

-- The bands of seed predicted_value_bands, in sort_order, cover every value once: the first has
-- no lower bound, the last no upper one, each starts where the one before ends and ends above
-- its start. Failing rows: the bands breaking it.
with

bands as (

    select
        predicted_value_band,
        min_predicted_clv,
        max_predicted_clv,
        sort_order,
        lag(max_predicted_clv) over (order by sort_order) as previous_max_predicted_clv,
        row_number() over (order by sort_order) as band_number,
        count(*) over () as band_count

    from {{ ref('predicted_value_bands') }}

)

select * from bands
where not coalesce(
    (
        (band_number = 1 and min_predicted_clv is null)
        or (band_number > 1 and min_predicted_clv = previous_max_predicted_clv)
    )
    and (
        (band_number = band_count and max_predicted_clv is null)
        or (band_number < band_count and max_predicted_clv > min_predicted_clv)
        or (band_number = 1 and band_count > 1 and max_predicted_clv is not null)
    ),
    false
)
