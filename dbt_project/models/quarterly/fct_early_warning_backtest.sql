-- The early-warning list's backtest (docs/metrics.md, "Backtest of the early-warning
-- list"): for every quarter whose horizon has ended by D, the list as it would have been
-- on the eve of the quarter (flagged_as_of = quarter_start - 1, from the data up to that
-- day only: the last purchase, the median gap, the revenue windows) against the clients
-- the contract's lost rule finds lost in the next at_risk_backtest_horizon_days days
-- (a lost episode with lost_date in [quarter_start, horizon_end]).
--
-- One row per quarter: precision (the flagged that were lost), recall (the lost that
-- were flagged), and the share of the lost clients' revenue that was flagged in time.
-- Built by the quarterly DAG (tag quarterly): a quarter's row changes only when a quarter's
-- horizon ends or old data is corrected.

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
        max(purchase_days.purchase_date) as last_purchase_date,
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

active as (

    -- Active on the eve: not lost by then under the threshold known then.
    select
        histories.quarter_start,
        histories.client_id,
        histories.flagged_as_of - histories.last_purchase_date as days_since_last_purchase,
        histories.median_gap_days,
        coalesce(revenue.revenue_recent, 0) as revenue_recent,
        coalesce(revenue.revenue_year_before, 0) as revenue_year_before,
        coalesce(revenue.revenue_12m, 0) as revenue_12m
    from purchase_histories as histories
    left join revenue
        on (histories.quarter_start, histories.client_id) = (revenue.quarter_start, revenue.client_id)
    left join {{ ref('int_clients') }} as clients
        on histories.client_id = clients.client_id
    where
        histories.flagged_as_of - histories.last_purchase_date
        <= {{ lost_threshold_days('histories.median_gap_days', 'clients.industry') }}

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
        active.quarter_start,
        active.revenue_12m,
        {{ at_risk_is_overdue('active.days_since_last_purchase', 'active.median_gap_days') }}
        or {{ at_risk_is_declining('active.revenue_recent', 'active.revenue_year_before') }} as is_flagged,
        lost.client_id is not null as is_lost
    from active
    left join lost
        on (active.quarter_start, active.client_id) = (lost.quarter_start, lost.client_id)

),

counted as (

    select
        quarter_start,
        count(*) as active_clients,
        count(*) filter (where is_flagged) as flagged_clients,
        count(*) filter (where is_lost) as lost_clients,
        count(*) filter (where is_flagged and is_lost) as flagged_lost_clients,
        coalesce(sum(revenue_12m) filter (where is_lost), 0) as lost_revenue_12m,
        coalesce(sum(revenue_12m) filter (where is_flagged and is_lost), 0) as flagged_lost_revenue_12m
    from judged
    group by quarter_start

)

select
    quarters.quarter_start,
    quarters.quarter_end,
    quarters.quarter_label,
    quarters.flagged_as_of,
    quarters.horizon_end,
    counted.active_clients,
    counted.flagged_clients,
    counted.lost_clients,
    counted.flagged_lost_clients,
    round(cast(counted.flagged_lost_clients as numeric) / nullif(counted.flagged_clients, 0), 4) as flag_precision,
    round(cast(counted.flagged_lost_clients as numeric) / nullif(counted.lost_clients, 0), 4) as flag_recall,
    round(cast(counted.lost_clients as numeric) / nullif(counted.active_clients, 0), 4) as loss_rate,
    counted.lost_revenue_12m,
    counted.flagged_lost_revenue_12m,
    round(counted.flagged_lost_revenue_12m / nullif(counted.lost_revenue_12m, 0), 4) as flagged_revenue_share,
    {{ as_of_date() }} as as_of_date
from quarters
inner join counted
    on quarters.quarter_start = counted.quarter_start
