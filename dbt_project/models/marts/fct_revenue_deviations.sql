-- Revenue dynamics per client and closed quarter (see int_revenue_deviations).
-- A view over the incremental intermediate table: the nightly run copies nothing
-- and as_of_date is the D of the marts' build.

{{ config(materialized='view') }}

select
    client_id,
    quarter_start,
    quarter_end,
    net_revenue,
    previous_quarter_revenue,
    same_quarter_last_year_revenue,
    deviation_vs_previous_quarter,
    deviation_vs_previous_quarter_pct,
    deviation_vs_last_year,
    deviation_vs_last_year_pct,
    quarter_revenue_at_risk_vs_previous_quarter,
    quarter_revenue_at_risk_vs_last_year,
    {{ as_of_date() }} as as_of_date
from {{ ref('int_revenue_deviations') }}
