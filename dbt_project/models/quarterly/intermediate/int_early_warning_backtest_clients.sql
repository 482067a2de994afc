-- The early-warning list's backtest per client (docs/metrics.md, "Backtest of the
-- early-warning list"): for every quarter whose horizon has ended by D, every client with a
-- purchase day up to the eve of the quarter (flagged_as_of = quarter_start - 1), from the
-- data up to that day only: its purchase history (first and last purchase day, purchase
-- days: what a buy-till-you-die model reads), whether it was active then (not lost under
-- the threshold known then), whether the list's rhythm rules flagged it (active clients
-- only), its revenue of the 365 days to the eve, and whether the contract's lost rule finds
-- it lost in the next at_risk_backtest_horizon_days days (a lost episode with lost_date in
-- [quarter_start, horizon_end]).
--
-- fct_early_warning_backtest counts it per quarter; winback.analytics.signal_comparison
-- reads it to judge a second signal (BG/NBD probability alive) on the same clients.
-- Built by the quarterly DAG (tag quarterly).

{%- set horizon = var('at_risk_backtest_horizon_days') | int %}
{%- set trend_window = var('at_risk_trend_window_days') | int %}

with quarters as (

    select
        quarter_start,
        quarter_end,
        quarter_label,
        quarter_start - 1 as flagged_as_of,
        quarter_start + {{ horizon - 1 }} as horizon_end
    from {{ ref('int_quarters') }}
    where quarter_start + {{ horizon - 1 }} <= {{ as_of_date() }}

),

purchase_histories as (

    -- Per quarter and client, from its purchase days up to the eve: the last one and the
    -- median gap between them (int_purchase_days' rule without the days after the eve).
    select
        quarters.quarter_start,
        quarters.flagged_as_of,
        purchase_days.client_id,
        min(purchase_days.purchase_date) as first_purchase_date,
        max(purchase_days.purchase_date) as last_purchase_date,
        count(*) as purchase_days,
        percentile_cont(0.5) within group (
            order by purchase_days.purchase_date - purchase_days.previous_purchase_date
        ) as median_gap_days
    from quarters, {{ ref('int_purchase_days') }} as purchase_days
    where purchase_days.purchase_date <= quarters.flagged_as_of
    group by quarters.quarter_start, quarters.flagged_as_of, purchase_days.client_id

),

revenue as (

    -- int_client_recent_revenue's windows, ending on the eve.
    select
        quarters.quarter_start,
        client_days.client_id,
        sum(client_days.net_amount) filter (
            where client_days.order_date > quarters.flagged_as_of - {{ trend_window }}
        ) as revenue_recent,
        sum(client_days.net_amount) filter (
            where client_days.order_date <= quarters.flagged_as_of - 365
        ) as revenue_year_before,
        sum(client_days.net_amount) filter (
            where client_days.order_date > quarters.flagged_as_of - 365
        ) as revenue_12m
    from quarters, {{ ref('int_client_days') }} as client_days
    where
        client_days.order_date > quarters.flagged_as_of - {{ 365 + trend_window }}
        and client_days.order_date <= quarters.flagged_as_of
    group by quarters.quarter_start, client_days.client_id

),

histories as (

    select
        histories.quarter_start,
        histories.client_id,
        histories.first_purchase_date,
        histories.last_purchase_date,
        histories.purchase_days,
        histories.flagged_as_of - histories.last_purchase_date as days_since_last_purchase,
        histories.median_gap_days,
        -- active on the eve: not lost by then under the threshold known then
        histories.flagged_as_of - histories.last_purchase_date
        <= {{ lost_threshold_days('histories.median_gap_days', 'clients.industry') }} as is_active,
        coalesce(revenue.revenue_recent, 0) as revenue_recent,
        coalesce(revenue.revenue_year_before, 0) as revenue_year_before,
        coalesce(revenue.revenue_12m, 0) as revenue_12m
    from purchase_histories as histories
    left join revenue
        on (histories.quarter_start, histories.client_id) = (revenue.quarter_start, revenue.client_id)
    left join {{ ref('int_clients') }} as clients
        on histories.client_id = clients.client_id

),

lost as (

    select distinct
        quarters.quarter_start,
        episodes.client_id
    from quarters
    inner join {{ ref('int_lost_episodes') }} as episodes
        on episodes.lost_date between quarters.quarter_start and quarters.horizon_end

),

judged as (

    select
        histories.quarter_start,
        histories.client_id,
        histories.first_purchase_date,
        histories.last_purchase_date,
        histories.purchase_days,
        histories.is_active,
        histories.is_active and (
            {{ at_risk_is_overdue('histories.days_since_last_purchase', 'histories.median_gap_days') }}
            or {{ at_risk_is_declining('histories.revenue_recent', 'histories.revenue_year_before') }}
        ) as is_flagged,
        lost.client_id is not null as is_lost,
        histories.revenue_12m
    from histories
    left join lost
        on (histories.quarter_start, histories.client_id) = (lost.quarter_start, lost.client_id)

)

select * from judged
