{#- The run's "as of" moment: the end of the Airflow data interval, as a timestamptz literal.
    Taken from the var `as_of_at` or else the environment variable TREBOL_AS_OF_AT (which keeps
    dbt's partial parsing when the date changes). Never the wall clock. -#}
{% macro as_of_at() -%}
    {%- set value = var('as_of_at', none) or env_var('TREBOL_AS_OF_AT', '') -%}
    {%- if not value and execute -%}
        {{ exceptions.raise_compiler_error("as_of_at is not set: pass --vars '{as_of_at: ...}' or set TREBOL_AS_OF_AT to the data interval end (ISO timestamp)") }}
    {%- endif -%}
    cast('{{ value or "1970-01-01T00:00:00+00:00" }}' as timestamp with time zone)
{%- endmacro %}
