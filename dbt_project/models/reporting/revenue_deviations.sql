-- BI view: each client's revenue per closed quarter against the previous quarter and the
-- same quarter a year before, and the quarter's revenue at risk (documented in
-- _reporting__models.yml).

select
    {{ as_of_date() }} as data_as_of_date,
    d.quarter_start,
    d.quarter_end,
    d.client_id,
    c.manager_id,
    c.region,
    c.industry,
    d.net_revenue,
    d.previous_quarter_revenue,
    d.same_quarter_last_year_revenue,
    d.deviation_vs_previous_quarter,
    d.deviation_vs_previous_quarter_pct,
    d.deviation_vs_last_year,
    d.deviation_vs_last_year_pct,
    d.quarter_revenue_at_risk_vs_previous_quarter,
    d.quarter_revenue_at_risk_vs_last_year
from {{ ref('fct_revenue_deviations') }} as d
left join {{ ref('dim_clients') }} as c
    on d.client_id = c.client_id
