-- Revenue dynamics per client and closed quarter: net revenue vs the previous quarter and
-- vs the same quarter a year before, in money and percent (100 x deviation / |base|, null
-- when the base is 0), and per quarter the revenue at risk: the sum of the negative
-- deviations of all clients (<= 0). Quarters without sales count as 0; rows where all
-- three revenues are 0 are left out.
-- Incremental by quarter (macros/changed_clients.sql, quarters_to_rebuild); computed_as_of
-- (the D of the run that last computed the quarter) and processed_through are
-- bookkeeping.

{{ config(post_hook=["{{ quarter_changes_post_hook(ref('int_quarters')) }}"]) }}

with quarters as (

    select
        quarters.quarter_start,
        quarters.quarter_end,
        quarters.previous_quarter_start,
        quarters.same_quarter_last_year_start
    from {{ ref('int_quarters') }} as quarters
    where {{ quarters_to_rebuild('quarters', ref('int_client_daily_revenue')) }}

),

quarter_revenue as (

    select * from {{ ref('int_client_quarter_revenue') }}

),

first_quarters as (

    select
        client_id,
        min(quarter_start) as first_quarter_start
    from quarter_revenue
    group by client_id

),

compared as (

    select
        first_quarters.client_id,
        quarters.quarter_start,
        quarters.quarter_end,
        coalesce(current_quarter.net_amount, 0) as net_revenue,
        coalesce(previous_quarter.net_amount, 0) as previous_quarter_revenue,
        coalesce(last_year.net_amount, 0) as same_quarter_last_year_revenue
    from quarters
    inner join first_quarters
        on quarters.quarter_start >= first_quarters.first_quarter_start
    left join quarter_revenue as current_quarter
        on
            first_quarters.client_id = current_quarter.client_id
            and quarters.quarter_start = current_quarter.quarter_start
    left join quarter_revenue as previous_quarter
        on
            first_quarters.client_id = previous_quarter.client_id
            and quarters.previous_quarter_start = previous_quarter.quarter_start
    left join quarter_revenue as last_year
        on
            first_quarters.client_id = last_year.client_id
            and quarters.same_quarter_last_year_start = last_year.quarter_start

),

deviations as (

    select
        client_id,
        quarter_start,
        quarter_end,
        net_revenue,
        previous_quarter_revenue,
        same_quarter_last_year_revenue,
        net_revenue - previous_quarter_revenue as deviation_vs_previous_quarter,
        round(
            100 * (net_revenue - previous_quarter_revenue) / nullif(abs(previous_quarter_revenue), 0), 2
        ) as deviation_vs_previous_quarter_pct,
        net_revenue - same_quarter_last_year_revenue as deviation_vs_last_year,
        round(
            100 * (net_revenue - same_quarter_last_year_revenue) / nullif(abs(same_quarter_last_year_revenue), 0), 2
        ) as deviation_vs_last_year_pct
    from compared
    where not (net_revenue = 0 and previous_quarter_revenue = 0 and same_quarter_last_year_revenue = 0)

)

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
    sum(least(deviation_vs_previous_quarter, 0)) over by_quarter as quarter_revenue_at_risk_vs_previous_quarter,
    sum(least(deviation_vs_last_year, 0)) over by_quarter as quarter_revenue_at_risk_vs_last_year,
    {{ build_marks(ref('int_client_daily_revenue')) }}
from deviations
window by_quarter as (partition by quarter_start)
