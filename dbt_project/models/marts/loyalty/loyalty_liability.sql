-- The points liability of the loyalty club by month, from the month of the first ledger entry to
-- the as-of month: points issued, redeemed, expired and adjusted in the month, the points
-- outstanding at its end and their value, and the trailing 12-month breakage rate.
with

point_entries as (

    select * from {{ ref('stg_loyalty__point_entries') }}

),

-- only what was booked before the as-of moment counts; months are calendar months in the
-- business timezone
entries_before_as_of as (

    select
        cast({{ dbt.date_trunc('month', local_date('occurred_at')) }} as date) as month_start_on,
        entry_type,
        points

    from point_entries
    where occurred_at < {{ as_of_at() }}

),

monthly_entries as (

    select
        month_start_on,
        sum(case when entry_type = 'earn' then points else 0 end) as points_issued,
        sum(case when entry_type = 'redeem' then -points else 0 end) as points_redeemed,
        sum(case when entry_type = 'expire' then -points else 0 end) as points_expired,
        sum(case when entry_type = 'adjust' then points else 0 end) as points_adjusted,
        sum(points) as points_net_change

    from entries_before_as_of
    group by month_start_on

),

month_bounds as (

    select
        min(month_start_on) as first_month_start_on,
        cast({{ dbt.date_trunc('month', local_date(as_of_at())) }} as date) as as_of_month_start_on

    from monthly_entries

),

-- every month, also those without entries (no entry at all: no month)
months as (

    {{ month_spine(
        '(select first_month_start_on from month_bounds)',
        '(select as_of_month_start_on from month_bounds)'
    ) }}

),

monthly_movements as (

    select
        months.month_start_on,
        {{ local_day_start(dbt.dateadd('month', 1, 'months.month_start_on')) }}
            as next_month_start_at,
        coalesce(monthly_entries.points_issued, 0) as points_issued,
        coalesce(monthly_entries.points_redeemed, 0) as points_redeemed,
        coalesce(monthly_entries.points_expired, 0) as points_expired,
        coalesce(monthly_entries.points_adjusted, 0) as points_adjusted,
        coalesce(monthly_entries.points_net_change, 0) as points_net_change

    from months
    left join monthly_entries
        on months.month_start_on = monthly_entries.month_start_on

),

-- one row per month, so a window of rows is a window of months
running_totals as (

    select
        monthly_movements.*,
        sum(points_net_change) over (
            order by month_start_on rows between unbounded preceding and current row
        ) as outstanding_points,
        sum(points_redeemed) over (
            order by month_start_on
            rows between {{ var('loyalty_trailing_months') - 1 }} preceding and current row
        ) as points_redeemed_last_12_months,
        sum(points_expired) over (
            order by month_start_on
            rows between {{ var('loyalty_trailing_months') - 1 }} preceding and current row
        ) as points_expired_last_12_months

    from monthly_movements

),

final as (

    select
        month_start_on,
        -- the as-of month ends at the as-of moment
        case
            when next_month_start_at <= {{ as_of_at() }} then next_month_start_at
            else {{ as_of_at() }}
        end as month_end_at,
        next_month_start_at <= {{ as_of_at() }} as is_complete_month,
        cast(points_issued as integer) as points_issued,
        cast(points_redeemed as integer) as points_redeemed,
        cast(points_expired as integer) as points_expired,
        cast(points_adjusted as integer) as points_adjusted,
        cast(points_net_change as integer) as points_net_change,
        cast(outstanding_points as integer) as outstanding_points,
        cast(outstanding_points * {{ var('loyalty_point_value') }} as numeric(14, 2))
            as outstanding_points_value,
        cast(points_redeemed_last_12_months as integer) as points_redeemed_last_12_months,
        cast(points_expired_last_12_months as integer) as points_expired_last_12_months,
        cast(case
            when points_redeemed_last_12_months + points_expired_last_12_months > 0
                then 1.0 * points_expired_last_12_months
                    / (points_redeemed_last_12_months + points_expired_last_12_months)
        end as numeric(10, 4)) as breakage_rate_last_12_months,
        {{ local_date(as_of_at()) }} as as_of_date

    from running_totals

)

select * from final
