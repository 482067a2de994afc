-- BI view: the early-warning list, the active clients to call before they are lost, the
-- most revenue at risk first (documented in _reporting__models.yml).

select
    {{ as_of_date() }} as data_as_of_date,
    r.risk_rank,
    r.client_id,
    r.manager_id,
    r.region,
    r.industry,
    r.abc_xyz_class as segment,
    r.is_at_risk,
    r.is_overdue,
    r.is_declining,
    r.last_purchase_date,
    r.days_since_last_purchase,
    r.typical_gap_days as usual_days_between_purchases,
    r.expected_next_purchase_date,
    r.days_overdue,
    r.revenue_recent as revenue_last_90_days,
    r.revenue_year_before as revenue_same_days_last_year,
    r.revenue_12m as revenue_last_12_months,
    r.revenue_at_risk,
    r.days_since_last_contact,
    r.latest_nps_score,
    r.potential_revenue
from {{ ref('at_risk_clients') }} as r
