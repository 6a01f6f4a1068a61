-- How the customers who used a promotion (a discount on a POS or web line) differ from comparable
-- customers who did not, over the period of var promotion_effect_window_days local days before
-- the as-of date: per channel (store, online, all) and stratum (value tier and RFM segment at the
-- period's start), both groups' mean ticket size, purchase frequency and margin per customer,
-- and the difference users minus non-users with Welch's 95% interval (degrees of freedom
-- Welch-Satterthwaite, rounded down to a tabulated value of seed student_t_critical_values, as
-- campaign_performance). The row of stratum all weighs the strata by their promotion users.
-- The arithmetic is in numeric, cast to double precision at the end: floating-point sums depend
-- on the order rows are added in, which a parallel plan changes from run to run (at 1 million
-- people the same run twice gave marts that differed in the last digits).
-- Observational: customers choose to use a promotion, so a difference is an association within
-- a segment, not the promotion's effect (for that: a campaign with a holdout,
-- campaign_performance).
{%- set measures = ['ticket_size', 'purchase_frequency', 'margin_per_customer'] %}
with

transactions as (

    select * from {{ ref('fct_transactions') }}

),

segment_history as (

    select * from {{ ref('segment_history') }}

),

t_ranges as (

    select * from {{ ref('int_statistics__t_critical_ranges') }}

),

period_days as (

    select
        cast({{ dbt.dateadd('day', -var('promotion_effect_window_days'),
                            local_date(as_of_at())) }} as date) as period_start_on,
        {{ as_of_at() }} as period_end_at

),

period as (

    select
        period_start_on,
        {{ local_day_start('period_start_on') }} as period_start_at,
        period_end_at

    from period_days

),

-- the customers' segments at the period's start: the newest snapshot kept on or before that
-- date (a snapshot of date D is the state before D began)
segment_snapshot as (

    select max(segment_history.as_of_date) as as_of_date

    from segment_history
    cross join period
    where segment_history.as_of_date <= period.period_start_on

),

segments as (

    select
        segment_history.customer_key,
        segment_history.value_tier,
        segment_history.rfm_segment

    from segment_history
    inner join segment_snapshot
        on segment_history.as_of_date = segment_snapshot.as_of_date

),

sales as (

    select
        transactions.transaction_id,
        transactions.customer_key,
        transactions.channel,
        sum(transactions.gross_amount) as gross_amount,
        sum(transactions.discount_amount) as discount_amount,
        sum(transactions.net_amount) as net_amount,
        sum(transactions.margin_amount) as margin_amount,
        {{ dbt.bool_or('transactions.discount_amount > 0') }} as is_discounted

    from transactions
    cross join period
    where
        not transactions.is_return
        and transactions.customer_key is not null
        and transactions.transacted_at >= period.period_start_at
        and transactions.transacted_at < period.period_end_at
    group by transactions.transaction_id, transactions.customer_key, transactions.channel

),

sales_by_channel as (

    {%- for channel in ['channel', "'all'"] %}
    select
        cast({{ channel }} as varchar) as channel,
        customer_key,
        transaction_id,
        gross_amount,
        discount_amount,
        net_amount,
        margin_amount,
        is_discounted
    from sales
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

customer_channels as (

    select
        sales_by_channel.channel,
        sales_by_channel.customer_key,
        count(*) as transactions,
        sum(sales_by_channel.gross_amount) as gross_amount,
        sum(sales_by_channel.discount_amount) as discount_amount,
        sum(sales_by_channel.net_amount) as net_amount,
        sum(sales_by_channel.margin_amount) as margin_amount,
        {{ dbt.bool_or('sales_by_channel.is_discounted') }} as is_promotion_user

    from sales_by_channel
    group by sales_by_channel.channel, sales_by_channel.customer_key

),

customer_measures as (

    select
        customer_channels.channel,
        customer_channels.customer_key,
        customer_channels.is_promotion_user,
        cast(coalesce(segments.value_tier, 'unknown') as varchar) as value_tier,
        cast(coalesce(segments.rfm_segment, 'unknown') as varchar) as rfm_segment,
        customer_channels.gross_amount,
        customer_channels.discount_amount,
        customer_channels.net_amount / customer_channels.transactions as ticket_size,
        cast(customer_channels.transactions as numeric) as purchase_frequency,
        customer_channels.margin_amount as margin_per_customer

    from customer_channels
    left join segments
        on customer_channels.customer_key = segments.customer_key

),

group_totals as (

    select
        channel,
        value_tier,
        rfm_segment,
        is_promotion_user,
        count(*) as customers,
        sum(gross_amount) as gross_amount,
        sum(discount_amount) as discount_amount,
        {%- for measure in measures %}
        avg({{ measure }}) as {{ measure }}_mean,
        var_samp({{ measure }}) as {{ measure }}_variance{{ ',' if not loop.last }}
        {%- endfor %}

    from customer_measures
    group by channel, value_tier, rfm_segment, is_promotion_user

),

strata as (

    select
        channel,
        value_tier,
        rfm_segment,
        {%- set groups = [('users', 'is_promotion_user'), ('non_users', 'not is_promotion_user')] %}
        {%- for group, flag in groups %}
        cast(coalesce(sum(case when {{ flag }} then customers end), 0) as numeric)
            as {{ group }},
        {%- for measure in measures %}
        max(case when {{ flag }} then {{ measure }}_mean end) as {{ group }}_{{ measure }},
        max(case when {{ flag }} then {{ measure }}_variance end)
            as {{ group }}_{{ measure }}_variance,
        {%- endfor %}
        {%- endfor %}
        coalesce(sum(case when is_promotion_user then gross_amount end), 0) as users_gross_amount,
        coalesce(sum(case when is_promotion_user then discount_amount end), 0)
            as users_discount_amount

    from group_totals
    group by channel, value_tier, rfm_segment

),

-- per measure, the squared standard error of the difference (variance of each group's mean,
-- summed) and the denominator of its Welch-Satterthwaite degrees of freedom; only where both
-- groups have two customers (a sample variance)
stratum_terms as (

    select
        *,
        users >= 2 and non_users >= 2 as is_compared,
        {%- for measure in measures %}
        {%- set users_term = 'users_' ~ measure ~ '_variance / users' %}
        {%- set non_users_term = 'non_users_' ~ measure ~ '_variance / non_users' %}
        case when users >= 2 and non_users >= 2
                then {{ users_term }} + {{ non_users_term }}
        end as {{ measure }}_variance_sum,
        case when users >= 2 and non_users >= 2
                then power({{ users_term }}, 2) / (users - 1)
                + power({{ non_users_term }}, 2) / (non_users - 1)
        end as {{ measure }}_degrees_denominator{{ ',' if not loop.last }}
        {%- endfor %}

    from strata

),

stratum_rows as (

    select
        channel,
        value_tier,
        rfm_segment,
        users,
        non_users,
        case when is_compared then users else 0 end as users_compared,
        users_gross_amount,
        users_discount_amount,
        {%- for measure in measures %}
        users_{{ measure }},
        non_users_{{ measure }},
        {{ measure }}_variance_sum,
        {{ measure }}_degrees_denominator{{ ',' if not loop.last }}
        {%- endfor %}

    from stratum_terms

),

-- the strata compared, weighted by their users (w = users / all users compared): each group's
-- mean is the weighted mean of the strata's means (for the users, their plain mean; for the
-- non-users, their mean standardised to the users' mix of strata), the variance of the
-- difference the sum of w² times the strata's, the degrees of freedom's denominator that of w⁴
-- times the strata's
overall_rows as (

    select
        channel,
        'all' as value_tier,
        'all' as rfm_segment,
        sum(users) as users,
        sum(non_users) as non_users,
        sum(case when is_compared then users else 0 end) as users_compared,
        sum(users_gross_amount) as users_gross_amount,
        sum(users_discount_amount) as users_discount_amount,
        {%- set weight_total = 'nullif(sum(case when is_compared then users else 0 end), 0)' %}
        {%- for measure in measures %}
        sum(case when is_compared then users * users_{{ measure }} end) / {{ weight_total }}
            as users_{{ measure }},
        sum(case when is_compared then users * non_users_{{ measure }} end) / {{ weight_total }}
            as non_users_{{ measure }},
        sum(case when is_compared then power(users, 2) * {{ measure }}_variance_sum end)
        / power({{ weight_total }}, 2) as {{ measure }}_variance_sum,
        sum(case when is_compared then power(users, 4) * {{ measure }}_degrees_denominator end)
        / power({{ weight_total }}, 4) as {{ measure }}_degrees_denominator
        {{- ',' if not loop.last }}
        {%- endfor %}

    from stratum_terms
    group by channel

),

all_rows as (

    select * from stratum_rows
    union all
    select * from overall_rows

),

-- Welch-Satterthwaite degrees of freedom, rounded down to whole degrees (1e-9 absorbs the
-- rounding of the numeric division of an exact integer)
welch_degrees as (

    select
        *,
        {%- for measure in measures %}
        case when {{ measure }}_variance_sum > 0 then floor(
            1e-9 + power({{ measure }}_variance_sum, 2)
            / nullif({{ measure }}_degrees_denominator, 0)
        ) end as {{ measure }}_welch_degrees{{ ',' if not loop.last }}
        {%- endfor %}

    from all_rows

),

with_critical_values as (

    select
        welch_degrees.*,
        {%- for measure in measures %}
        {{ measure }}_t.critical_value as {{ measure }}_t_critical_value{{ ',' if not loop.last }}
        {%- endfor %}

    from welch_degrees
    {%- for measure in measures %}
    left join t_ranges as {{ measure }}_t
        on
            welch_degrees.{{ measure }}_welch_degrees >= {{ measure }}_t.degrees_from
            and (
                {{ measure }}_t.degrees_to is null
                or welch_degrees.{{ measure }}_welch_degrees < {{ measure }}_t.degrees_to
            )
    {%- endfor %}

),

differences as (

    select
        *,
        {%- for measure in measures %}
        users_{{ measure }} - non_users_{{ measure }} as {{ measure }}_difference,
        case when {{ measure }}_variance_sum = 0 then 0
            else {{ measure }}_t_critical_value * sqrt({{ measure }}_variance_sum)
        end as {{ measure }}_half_width{{ ',' if not loop.last }}
        {%- endfor %}

    from with_critical_values

),

final as (

    select
        cast(differences.channel as varchar) as channel,
        cast(differences.value_tier as varchar) as value_tier,
        cast(differences.rfm_segment as varchar) as rfm_segment,
        period.period_start_at,
        period.period_end_at,
        segment_snapshot.as_of_date as segments_as_of_date,
        cast(differences.users as integer) as users,
        cast(differences.non_users as integer) as non_users,
        cast(differences.users_compared as integer) as users_compared,
        cast(differences.users_discount_amount as numeric(16, 2)) as users_discount,
        cast(differences.users_discount_amount / nullif(differences.users, 0) as double precision)
            as users_discount_per_customer,
        cast(
            differences.users_discount_amount / nullif(differences.users_gross_amount, 0)
            as double precision
        ) as users_discount_rate,
        {%- for measure in measures %}
        cast(differences.users_{{ measure }} as double precision) as users_{{ measure }},
        cast(differences.non_users_{{ measure }} as double precision)
            as non_users_{{ measure }},
        cast(differences.{{ measure }}_difference as double precision) as {{ measure }}_difference,
        cast(differences.{{ measure }}_difference - differences.{{ measure }}_half_width
            as double precision) as {{ measure }}_difference_low,
        cast(differences.{{ measure }}_difference + differences.{{ measure }}_half_width
            as double precision) as {{ measure }}_difference_high{{ ',' if not loop.last }}
        {%- endfor %}

    from differences
    cross join period
    cross join segment_snapshot

)

select * from final
