{{ config(materialized='view') }}

-- Client net revenue per day and sales channel (as of D), for the "dominant channel"
-- dimension (lines without a channel count as 'unknown').

select
    client_days.client_id,
    client_days.order_date,
    by_channel.key as channel,
    cast(by_channel.value as numeric) as net_amount
from {{ ref('int_client_days') }} as client_days
cross join lateral jsonb_each_text(client_days.net_amount_by_channel) as by_channel
