{#- Text in lower case without the accents legacy systems drop ("Muñoz Ibáñez" -> "munoz ibanez"),
    for comparing names across systems. -#}
{% macro fold_accents(text_expression) -%}
    {{ return(adapter.dispatch('fold_accents', 'trebol')(text_expression)) }}
{%- endmacro %}

{% macro default__fold_accents(text_expression) -%}
    translate(lower({{ text_expression }}), 'áàâäãéèêëíìîïóòôöõúùûüñçÁÀÂÄÃÉÈÊËÍÌÎÏÓÒÔÖÕÚÙÛÜÑÇ',
        'aaaaaeeeeiiiiooooouuuuncaaaaaeeeeiiiiooooouuuunc')
{%- endmacro %}
