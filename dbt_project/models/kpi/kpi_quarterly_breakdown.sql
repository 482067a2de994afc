-- The quarterly KPIs broken down by manager, region, industry, sales_channel and
-- loss_reason (long format; dimension assignment in int_kpi_members and
-- int_lost_episodes_enriched). One row per closed quarter and dimension value with at
-- least one member; the company totals are in kpi_quarterly.

select
    quarter_start,
    dimension,
    dimension_value,
    active_clients_start,
    new_clients,
    lost_clients,
    returned_clients,
    lost_pool_start,
    churn_rate,
    winback_rate,
    revenue_lost_ttm,
    revenue_recovered_90d,
    is_window_complete,
    median_days_to_return,
    lost_contacted_share,
    {{ as_of_date() }} as as_of_date
from {{ ref('int_kpi_quarterly') }}
where dimension != 'overall'
