{#- Every row satisfies `expression` (a boolean SQL expression over the model's columns);
    rows where it is false or null fail. Usable on a model or, for readability, on a column
    (the expression still names the column). Narrow it with the test's `where` config. -#}
{% test expression_is_true(model, expression, column_name=none) %}

select *

from {{ model }}
where not coalesce({{ expression }}, false)

{% endtest %}
