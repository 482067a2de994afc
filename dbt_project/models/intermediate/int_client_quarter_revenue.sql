-- Client net revenue, cost and gross margin per calendar quarter (as of D; the running
-- quarter is partial), for quarters with at least one non-cancelled line.

select
    client_id,
    {{ quarter_start('order_date') }} as quarter_start,
    sum(net_amount) as net_amount,
    sum(cost_amount) as cost_amount,
    sum(gross_margin) as gross_margin,
    count(*) filter (where is_purchase_day) as purchase_days,
    sum(order_count) as order_count
from {{ ref('int_client_days') }}
group by client_id, {{ quarter_start('order_date') }}
