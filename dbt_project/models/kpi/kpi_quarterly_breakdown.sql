-- The quarterly KPIs broken down by manager, region, industry, sales_channel and
-- loss_reason (long format; dimension assignment in int_kpi_members and
-- fct_lost_episodes). One row per closed quarter and dimension value with at
-- least one member; the company totals are in kpi_quarterly.
-- Every column of int_kpi_quarterly: the enforced contract (_kpi__models.yml) names and
-- orders them, so a KPI added there and defined in the yml needs no edit here.

select
    kpis.*,  -- noqa: AM04
    {{ as_of_date() }} as as_of_date
from {{ ref('int_kpi_quarterly') }} as kpis
where kpis.dimension != 'overall'
