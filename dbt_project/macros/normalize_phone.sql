{#- A phone number in E.164 (+<country code><number>), or null when it cannot be one.
    Separators are dropped; "+" or "00" starts an international number; a number of
    var('phone_national_digits') digits, with or without the country code in front, is taken as
    national to var('phone_default_country_code') (Spain by default: +34 and 9 digits). -#}
{% macro normalize_phone(phone_expression) -%}
    {{ return(adapter.dispatch('normalize_phone', 'trebol')(phone_expression)) }}
{%- endmacro %}

{% macro default__normalize_phone(phone_expression) -%}
    {%- set digits = "regexp_replace(" ~ phone_expression ~ ", '[^0-9]', '', 'g')" -%}
    {%- set country = var('phone_default_country_code') | string -%}
    {%- set national = var('phone_national_digits') | int -%}
    case
        when ltrim({{ phone_expression }}) like '+%'
            and {{ digits }} ~ '^[1-9][0-9]{7,14}$'
            then '+' || {{ digits }}
        when {{ digits }} ~ '^00[1-9][0-9]{7,14}$'
            then '+' || substr({{ digits }}, 3)
        when {{ digits }} ~ '^[0-9]{ {{- national -}} }$'
            then '+{{ country }}' || {{ digits }}
        when {{ digits }} ~ '^{{ country }}[0-9]{ {{- national -}} }$'
            then '+' || {{ digits }}
    end
{%- endmacro %}
