{#- A quantile on the run's date over the same quantile on the earlier date (relations `now` and
    `before` with columns `customers` and the quantile), rounded to 4 places; null (not judged)
    when either date has fewer than var quality_drift_min_customers customers or the earlier
    quantile is not above zero. -#}
{% macro drift_ratio(now, before, quantile) -%}
    case
        when
            least({{ now }}.customers, {{ before }}.customers)
            >= {{ var('quality_drift_min_customers') }}
            and {{ before }}.{{ quantile }} > 0
            then round(({{ now }}.{{ quantile }} / {{ before }}.{{ quantile }})::numeric, 4)
    end
{%- endmacro %}
