{#- The customer key a cluster takes from its key record (its oldest source record): 'C' and
    the first 16 hex digits of md5('<source>:<source id>'). A pure function of the record, so a
    full rebuild gives every customer the same key again, and no source id is exposed. -#}
{% macro customer_key(source_expression, source_id_expression) -%}
    'C' || substr(md5({{ source_expression }} || ':' || {{ source_id_expression }}), 1, 16)
{%- endmacro %}

{#- The keys that split the customer key space into `ranges` ranges of about the same number of
    customers (keys are md5 digests, spread evenly over the hex digits after the 'C'): the
    ranges-1 lower bounds of the ranges after the first, ascending, for comparison by bytes
    (macro byte_order). Any string falls in exactly one range: below the first bound, between
    two, or from the last one up. -#}
{% macro customer_key_range_bounds(ranges) -%}
    {%- if ranges is not number or ranges != ranges | int or ranges < 1 or ranges > 256 -%}
        {{ exceptions.raise_compiler_error('customer key ranges must be a whole number from 1 to 256, not '
                                           ~ ranges ~ ' (var transaction_totals_key_ranges)') }}
    {%- endif -%}
    {%- set bounds = [] -%}
    {%- for range_index in range(1, ranges) -%}
        {%- do bounds.append('C' ~ '%02x' % (range_index * 256 // ranges)) -%}
    {%- endfor -%}
    {{ return(bounds) }}
{%- endmacro %}
