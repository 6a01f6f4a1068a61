-- The purchases each campaign member made within the campaign's attribution window, one row per
-- campaign, member and purchase (a sale: its lines summed; returns are not netted), in the
-- member's arm. Overlap rule (last touch): a purchase inside the windows of several campaigns
-- the customer was in (sent or held out) counts for the most recent one only (latest send date,
-- then audience name). Arms are drawn independently of every other campaign, so a later
-- campaign takes purchases from both arms of an earlier one alike: its lift stays unbiased, over
-- a window cut short for the members the later campaign shares.
with

campaigns as (

    select * from {{ ref('int_campaigns__campaigns') }}

),

campaign_members as (

    select * from {{ ref('int_campaigns__members') }}

),

transactions as (

    select * from {{ ref('fct_transactions') }}

),

purchases as (

    select
        customer_key,
        transaction_id,
        min(transacted_at) as purchased_at,
        sum(gross_amount) as gross_amount,
        sum(discount_amount) as discount_amount,
        sum(net_amount) as net_amount,
        sum(coalesce(margin_amount, 0)) as margin_amount

    from transactions
    where
        not is_return
        and customer_key is not null
        and transacted_at < {{ as_of_at() }}
        and transacted_at >= (select min(campaigns.window_start_at) from campaigns)
    group by customer_key, transaction_id

),

purchases_in_windows as (

    select
        campaign_members.campaign_id,
        campaign_members.customer_key,
        campaign_members.arm,
        campaigns.sent_on,
        campaigns.audience,
        purchases.transaction_id,
        purchases.purchased_at,
        purchases.gross_amount,
        purchases.discount_amount,
        purchases.net_amount,
        purchases.margin_amount

    from purchases
    inner join campaign_members
        on purchases.customer_key = campaign_members.customer_key
    inner join campaigns
        on
            campaign_members.campaign_id = campaigns.campaign_id
            and purchases.purchased_at >= campaigns.window_start_at
            and purchases.purchased_at < campaigns.window_end_at

),

ranked_touches as (

    select
        *,
        row_number() over (
            partition by customer_key, transaction_id
            order by sent_on desc, audience desc
        ) as touch_recency

    from purchases_in_windows

),

final as (

    select
        campaign_id,
        customer_key,
        arm,
        transaction_id,
        purchased_at,
        gross_amount,
        discount_amount,
        net_amount,
        margin_amount

    from ranked_touches
    where touch_recency = 1

)

select * from final
