{#- A list of values as SQL string literals separated by commas, for `in (...)`: ['a', 'b'] gives
    'a', 'b' (a quote inside a value is doubled). -#}
{% macro quoted_list(values) -%}
    {%- for value in values -%}
        '{{ value | string | replace("'", "''") }}'{{ ", " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}
