{#- The customer key a cluster takes from its key record (its oldest source record): 'C' and
    the first 16 hex digits of md5('<source>:<source id>'). A pure function of the record, so a
    full rebuild gives every customer the same key again, and no source id is exposed. -#}
{% macro customer_key(source_expression, source_id_expression) -%}
    'C' || substr(md5({{ source_expression }} || ':' || {{ source_id_expression }}), 1, 16)
{%- endmacro %}
