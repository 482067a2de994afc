-- The early-warning list as of D: every active client (a purchase day <= D, not lost as of
-- D) with its own buying rhythm, its revenue trend, its last contact and answer, and two
-- flags: overdue (quiet for longer than its rhythm allows) and declining (revenue well
-- below the same period a year before). Ranked by the revenue at risk. Formulas in
-- docs/metrics.md ("Clients at risk") and _at_risk_clients.yml.
--
-- Rebuilt whole each night (every figure moves with D), from per-client incremental
-- inputs: the revenue windows (int_client_recent_revenue) and the latest contact
-- (int_client_latest_contacts) are recomputed only for the clients they changed for.

with last_purchase_days as (

    -- Each client's last purchase day (the one without a next): only a day within the
    -- greatest threshold before D can be an active client's, so the purchase_date index
    -- narrows the search to those days.
    select
        client_id,
        purchase_date as last_purchase_date,
        purchase_day_number as purchase_days,
        median_gap_days,
        threshold_days
    from {{ ref('int_purchase_days') }}
    where
        next_purchase_date is null
        and purchase_date >= {{ as_of_date() }} - {{ lost_threshold_bounds()[1] }}

),

segments as (

    -- The last closed quarter end holds every client with a line up to it (by its index).
    select
        segments.client_id,
        segments.abc_xyz_class
    from {{ ref('fct_client_segments') }} as segments
    where segments.quarter_end = (select max(closed.quarter_end) from {{ ref('fct_client_segments') }} as closed)

),

active as (

    select
        last_purchase_days.*,
        clients.manager_id,
        clients.region,
        clients.industry,
        clients.potential_revenue,
        segments.abc_xyz_class,
        {{ as_of_date() }} - last_purchase_days.last_purchase_date as days_since_last_purchase,
        last_purchase_days.last_purchase_date
        + cast(ceil(last_purchase_days.median_gap_days) as integer) as expected_next_purchase_date
    from last_purchase_days
    left join {{ ref('dim_clients') }} as clients
        on last_purchase_days.client_id = clients.client_id
    left join segments
        on last_purchase_days.client_id = segments.client_id
    where {{ as_of_date() }} - last_purchase_days.last_purchase_date <= last_purchase_days.threshold_days

),

flagged as (

    select
        active.client_id,
        active.manager_id,
        active.region,
        active.industry,
        active.abc_xyz_class,
        active.potential_revenue,
        active.last_purchase_date,
        active.days_since_last_purchase,
        active.purchase_days,
        active.median_gap_days as typical_gap_days,
        active.expected_next_purchase_date,
        -- greatest() skips nulls: without an expected date there is no overdue figure
        case
            when active.expected_next_purchase_date is not null
                then greatest({{ as_of_date() }} - active.expected_next_purchase_date, 0)
        end as days_overdue,
        active.threshold_days,
        coalesce(revenue.revenue_recent, 0) as revenue_recent,
        coalesce(revenue.revenue_year_before, 0) as revenue_year_before,
        coalesce(revenue.revenue_12m, 0) as revenue_12m,
        {{ as_of_date() }} - contacts.last_contact_date as days_since_last_contact,
        contacts.latest_nps_score,
        {{ at_risk_is_overdue('active.days_since_last_purchase', 'active.median_gap_days') }} as is_overdue,
        {{ at_risk_is_declining('coalesce(revenue.revenue_recent, 0)', 'coalesce(revenue.revenue_year_before, 0)') }}
            as is_declining,
        -- how far the client has come towards its lost threshold, 0 (bought today) to 1
        round(cast(active.days_since_last_purchase as numeric) / active.threshold_days, 4) as risk_score
    from active
    left join {{ ref('int_client_recent_revenue') }} as revenue
        on active.client_id = revenue.client_id
    left join {{ ref('int_client_latest_contacts') }} as contacts
        on active.client_id = contacts.client_id

)

select
    *,
    is_overdue or is_declining as is_at_risk,
    round(revenue_12m * risk_score, 2) as revenue_at_risk,
    row_number() over (order by revenue_12m * risk_score desc, client_id asc) as risk_rank,
    {{ as_of_date() }} as as_of_date
from flagged
