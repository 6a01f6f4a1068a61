{{ config(severity='error') }}

-- Every audience model (aud_<name>) has its offer in seed audience_offers (row <name>), and
-- every offer an audience model. Failing rows: the audience and which side lacks it.
{%- set audiences = [] %}
{%- for node in graph.nodes.values() %}
    {%- if node.resource_type == 'model' and node.name.startswith('aud_') %}
        {%- do audiences.append(node.name[4:]) %}
    {%- endif %}
{%- endfor %}
with

audience_models as (

    {% for audience in audiences | sort %}
    select '{{ audience }}' as audience
    {% if not loop.last %}union all{% endif %}
    {% else %}
    select cast(null as varchar) as audience
    where false
    {% endfor %}

),

audience_offers as (

    select * from {{ ref('audience_offers') }}

),

final as (

    select
        coalesce(audience_models.audience, audience_offers.audience) as audience,
        case
            when audience_offers.audience is null then 'no offer in audience_offers'
            else 'no model aud_' || audience_offers.audience
        end as problem

    from audience_models
    full outer join audience_offers
        on audience_models.audience = audience_offers.audience
    where audience_models.audience is null
        or audience_offers.audience is null

)

select * from final
