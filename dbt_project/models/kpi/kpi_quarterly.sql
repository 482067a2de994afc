-- The quarterly KPI table (metric contract), one row per closed quarter, unpublished:
-- the quality gate publishes it to the reporting schema. Quarters without any member
-- get zero counts and null rates.
-- The select list is the enforced contract of _kpi__models.yml (the KPI definition): a KPI
-- defined there is selected here as well; dbt refuses a build where the two differ.

select
    quarters.quarter_start,
    coalesce(kpis.active_clients_start, 0) as active_clients_start,
    coalesce(kpis.new_clients, 0) as new_clients,
    coalesce(kpis.lost_clients, 0) as lost_clients,
    coalesce(kpis.returned_clients, 0) as returned_clients,
    coalesce(kpis.lost_pool_start, 0) as lost_pool_start,
    kpis.churn_rate,
    kpis.winback_rate,
    coalesce(kpis.revenue_lost_ttm, 0) as revenue_lost_ttm,
    coalesce(kpis.revenue_recovered_90d, 0) as revenue_recovered_90d,
    coalesce(kpis.gross_margin_lost_ttm, 0) as gross_margin_lost_ttm,
    coalesce(kpis.gross_margin_recovered_90d, 0) as gross_margin_recovered_90d,
    coalesce(kpis.is_window_complete, true) as is_window_complete,
    kpis.median_days_to_return,
    kpis.lost_contacted_share,
    {{ as_of_date() }} as as_of_date
from {{ ref('int_quarters') }} as quarters
left join {{ ref('int_kpi_quarterly') }} as kpis
    on
        quarters.quarter_start = kpis.quarter_start
        and kpis.dimension = 'overall'
