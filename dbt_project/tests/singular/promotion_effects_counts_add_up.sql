{{ config(severity='error') }}

-- promotion_effects' counts: each channel's overall row (value tier and RFM segment all) counts
-- the customers of its strata, and in every stratum a customer of channel all bought in store or
-- online (or both), a promotion user of all used a promotion in either. Failing rows: the
-- channel and stratum that do not add up.
with

effects as (

    select * from {{ ref('promotion_effects') }}

),

strata as (

    select * from effects
    where value_tier <> 'all'

),

overall_rows as (

    select * from effects
    where value_tier = 'all'

),

strata_sums as (

    select
        channel,
        sum(users) as users,
        sum(non_users) as non_users,
        sum(users_compared) as users_compared,
        sum(users_discount) as users_discount

    from strata
    group by channel

),

overall_mismatches as (

    select
        overall_rows.channel,
        overall_rows.value_tier,
        overall_rows.rfm_segment

    from overall_rows
    full outer join strata_sums
        on overall_rows.channel = strata_sums.channel
    where
        overall_rows.channel is null
        or strata_sums.channel is null
        or overall_rows.users <> strata_sums.users
        or overall_rows.non_users <> strata_sums.non_users
        or overall_rows.users_compared <> strata_sums.users_compared
        or overall_rows.users_discount <> strata_sums.users_discount

),

by_channel as (

    select
        value_tier,
        rfm_segment,
        {%- for channel in ['store', 'online', 'all'] %}
        coalesce(sum(case when channel = '{{ channel }}' then users end), 0)
            as {{ channel }}_users,
        coalesce(sum(case when channel = '{{ channel }}' then users + non_users end), 0)
            as {{ channel }}_customers{{ ',' if not loop.last }}
        {%- endfor %}

    from strata
    group by value_tier, rfm_segment

),

channel_mismatches as (

    select
        'all' as channel,
        value_tier,
        rfm_segment

    from by_channel
    where
        all_users < greatest(store_users, online_users)
        or all_users > store_users + online_users
        or all_customers < greatest(store_customers, online_customers)
        or all_customers > store_customers + online_customers

)

select * from overall_mismatches
union all
select * from channel_mismatches
