{#- The audience an audience model (models/audiences/aud_<name>.sql) selects: <name>, its model's
    name without the prefix aud_ (in a dbt unit test, that of the model under test). It keys the
    audience's offer in seed audience_offers. -#}
{% macro audience_name() -%}
    {%- set prefix = 'aud_' -%}
    {%- if model.get('tested_node_unique_id') -%}
        {%- set model_name = model['tested_node_unique_id'].split('.')[-1] -%}
    {%- else -%}
        {%- set model_name = model['name'] -%}
    {%- endif -%}
    {%- if not model_name.startswith(prefix) -%}
        {{ exceptions.raise_compiler_error(
            "macro audience_name: model " ~ model_name ~ " is not an audience (aud_<name>)") }}
    {%- endif -%}
    {{ return(model_name[prefix | length:]) }}
{%- endmacro %}
