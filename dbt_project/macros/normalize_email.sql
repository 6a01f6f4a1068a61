{#- An email as compared across systems: trimmed and lower case; null when empty or when it cannot
    be an address (no '@' with a character on each side), as normalize_phone nulls what cannot be
    a phone number: such a value identifies and reaches no one. -#}
{% macro normalize_email(email_expression) -%}
    {{ return(adapter.dispatch('normalize_email', 'trebol')(email_expression)) }}
{%- endmacro %}

{% macro default__normalize_email(email_expression) -%}
    case
        when lower(trim({{ email_expression }})) like '%_@_%'
            then lower(trim({{ email_expression }}))
    end
{%- endmacro %}
