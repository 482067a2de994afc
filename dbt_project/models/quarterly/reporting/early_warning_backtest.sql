-- BI view of the early-warning list's backtest, one row per judged quarter (newest first).

select
    quarter_label,
    quarter_start,
    flagged_as_of,
    horizon_end,
    active_clients,
    flagged_clients,
    lost_clients,
    flagged_lost_clients,
    flag_precision,
    flag_recall,
    loss_rate,
    flagged_revenue_share,
    {{ as_of_date() }} as data_as_of_date
from {{ ref('fct_early_warning_backtest') }}
order by quarter_start desc
