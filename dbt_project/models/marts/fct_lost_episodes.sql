-- One row per lost episode with lost_date <= D (see int_lost_episodes for the rule).
-- A view: a projection of an incremental intermediate table, so the nightly run
-- copies nothing and as_of_date follows D.

{{ config(materialized='view') }}

select
    client_id,
    episode_number,
    last_purchase_date,
    lost_date,
    return_date,
    days_to_return,
    is_returned,
    threshold_days,
    revenue_lost_ttm,
    gross_margin_lost_ttm,
    revenue_recovered_90d,
    recovered_window_complete,
    is_contacted_after_loss,
    manager_id,
    region,
    industry,
    sales_channel,
    loss_reason,
    {{ as_of_date() }} as as_of_date
from {{ ref('int_lost_episodes_enriched') }}
