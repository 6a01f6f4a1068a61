-- Student's t two-sided 95% critical values as ranges of degrees of freedom: each tabulated
-- value of seed student_t_critical_values holds from its degrees up to the next tabulated ones
-- (the last: beyond). One owner of the lookup the Welch intervals of campaign_performance and
-- promotion_effects use (a degrees of freedom rounded down to the table: conservative).
with

t_critical_values as (

    select * from {{ ref('student_t_critical_values') }}

),

final as (

    select
        degrees_of_freedom as degrees_from,
        lead(degrees_of_freedom) over (order by degrees_of_freedom) as degrees_to,
        critical_value

    from t_critical_values

)

select * from final
