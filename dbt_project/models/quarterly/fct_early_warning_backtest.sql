-- The early-warning list's backtest (docs/metrics.md, "Backtest of the early-warning
-- list"): one row per quarter whose horizon has ended by D, counted from the per-client
-- judgement (int_early_warning_backtest_clients: the list as it would have been on the eve
-- of the quarter, from the data up to that day only, against the losses of the next
-- at_risk_backtest_horizon_days days). Precision (the flagged that were lost), recall (the
-- lost that were flagged), and the share of the lost clients' revenue flagged in time.
-- Built by the quarterly DAG (tag quarterly).

{%- set horizon = var('at_risk_backtest_horizon_days') | int %}

with counted as (

    select
        quarter_start,
        count(*) as active_clients,
        count(*) filter (where is_flagged) as flagged_clients,
        count(*) filter (where is_lost) as lost_clients,
        count(*) filter (where is_flagged and is_lost) as flagged_lost_clients,
        coalesce(sum(revenue_12m) filter (where is_lost), 0) as lost_revenue_12m,
        coalesce(sum(revenue_12m) filter (where is_flagged and is_lost), 0) as flagged_lost_revenue_12m
    from {{ ref('int_early_warning_backtest_clients') }}
    where is_active
    group by quarter_start

)

select
    quarters.quarter_start,
    quarters.quarter_end,
    quarters.quarter_label,
    quarters.quarter_start - 1 as flagged_as_of,
    quarters.quarter_start + {{ horizon - 1 }} as horizon_end,
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
from {{ ref('int_quarters') }} as quarters
inner join counted
    on quarters.quarter_start = counted.quarter_start
