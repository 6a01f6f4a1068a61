{#- Text in lower case without the accents legacy systems drop ("Muñoz Ibáñez" -> "munoz ibanez"),
    for comparing names across systems. -#}
{% macro fold_accents(text_expression) -%}
    {{ return(adapter.dispatch('fold_accents', 'trebol')(text_expression)) }}
{%- endmacro %}

{% macro default__fold_accents(text_expression) -%}
    translate(lower({{ text_expression }}), 'áàâäãéèêëíìîïóòôöõúùûüñçÁÀÂÄÃÉÈÊËÍÌÎÏÓÒÔÖÕÚÙÛÜÑÇ',
        'aaaaaeeeeiiiiooooouuuuncaaaaaeeeeiiiiooooouuuunc')
{%- endmacro %}

{#- PostgreSQL: a text of ASCII characters only (as many UTF-8 bytes as characters, whatever the
    database's encoding) has no accent to fold, and skips translate(), which compares each of
    its characters with each of the 48 accented ones: 2.8 s against 0.3 s on the 687,358 email
    handles of int_identity__identifiers at 200,000 people (docs/benchmarks.md). -#}
{% macro postgres__fold_accents(text_expression) -%}
    case
        when octet_length(convert_to({{ text_expression }}, 'UTF8')) = length({{ text_expression }})
            then lower({{ text_expression }})
        else {{ default__fold_accents(text_expression) }}
    end
{%- endmacro %}
