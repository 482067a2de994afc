{{ config(materialized='view') }}

-- The as-of view of int_client_daily_revenue: client-days with at least one
-- non-cancelled line and order_date <= D. Every revenue figure reads this model.

select
    client_id,
    order_date,
    net_amount,
    cost_amount,
    gross_margin,
    order_count,
    net_amount > 0 as is_purchase_day,
    net_amount_by_channel
from {{ ref('int_client_daily_revenue') }}
where
    active_line_count > 0
    and order_date <= {{ as_of_date() }}
