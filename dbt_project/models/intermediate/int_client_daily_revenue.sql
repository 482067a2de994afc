{{
    config(
        materialized='incremental',
        unique_key=['client_id', 'order_date'],
        indexes=[
            {'columns': ['client_id', 'order_date'], 'unique': True},
            {'columns': ['processed_through']},
            {'columns': ['order_date']}
        ]
    )
}}

-- Client net revenue per order date, over all raw lines (independent of the as-of date:
-- models computing figures read it through int_client_days, which applies D).
--
-- Incremental runs recompute only the (client_id, order_date) pairs touched by lines
-- delivered since the last run (int_sales_line_locations: the lines' current and, for
-- moved lines, previous pairs); each touched pair is recomputed from all its current
-- lines, so a correction of an old line re-aggregates its old date. A pair left with no
-- line (its only line moved away) is written with line_count = 0 and kept: its
-- processed_through tells the per-client models that this client changed
-- (macros/changed_clients.sql). Readers see only pairs with lines (int_client_days:
-- active lines; dim_clients: any line). A full refresh computes the same figures.
--
-- processed_through: the high-water mark of int_sales_line_locations when the row was
-- computed; the next incremental run starts from the maximum of it. The indexes serve
-- the delete+insert, and the per-client models' change detection (processed_through,
-- order_date: macros/changed_clients.sql); the unique one is the model's grain, checked
-- by PostgreSQL on every write (no grain test reads the table again).

with

{% if is_incremental() %}
    new_deliveries as (

        select
            locations.client_id,
            locations.order_date,
            locations.previous_client_id,
            locations.previous_order_date
        from {{ ref('int_sales_line_locations') }} as locations
        where locations.loaded_at > {{ last_build_mark('processed_through') }}

    ),

    touched as (

        select
            client_id,
            order_date
        from new_deliveries
        union
        select
            previous_client_id as client_id,
            previous_order_date as order_date
        from new_deliveries
        where previous_client_id is not null

    ),
{% endif %}

lines as (

    select
        sales_lines.client_id,
        sales_lines.order_date,
        sales_lines.order_id,
        sales_lines.channel,
        sales_lines.net_amount,
        sales_lines.cost_amount,
        sales_lines.is_cancelled
    {% if is_incremental() %}
        -- The touched pairs' lines through the locations' index, then by key: no scan
        -- of the whole raw table.
        from touched
        inner join {{ ref('int_sales_line_locations') }} as locations
            on
                touched.client_id = locations.client_id
                and touched.order_date = locations.order_date
        inner join {{ ref('stg_erp__sales_lines') }} as sales_lines
            on locations.line_id = sales_lines.line_id
    {% else %}
        from {{ ref('stg_erp__sales_lines') }} as sales_lines
    {% endif %}

),

by_day as (

    select
        client_id,
        order_date,
        coalesce(sum(net_amount) filter (where not is_cancelled), 0) as net_amount,
        coalesce(sum(cost_amount) filter (where not is_cancelled), 0) as cost_amount,
        count(*) filter (where not is_cancelled and cost_amount is null) as lines_without_cost,
        count(distinct order_id) filter (where not is_cancelled and net_amount > 0) as order_count,
        count(*) filter (where not is_cancelled) as active_line_count,
        count(*) filter (where is_cancelled) as cancelled_line_count,
        count(*) as line_count
    from lines
    group by client_id, order_date

),

by_channel as (

    select
        client_id,
        order_date,
        channel,
        sum(net_amount) as net_amount
    from lines
    where not is_cancelled
    group by client_id, order_date, channel

),

channels as (

    select
        client_id,
        order_date,
        jsonb_object_agg(channel, net_amount order by channel) as net_amount_by_channel
    from by_channel
    group by client_id, order_date

),

high_water_mark as (

    select max(loaded_at) as processed_through
    from {{ ref('int_sales_line_locations') }}

),

pairs as (

    {% if is_incremental() %}
        select
            client_id,
            order_date
        from touched
    {% else %}
        select
            client_id,
            order_date
        from by_day
    {% endif %}

)

select
    pairs.client_id,
    pairs.order_date,
    coalesce(by_day.net_amount, 0) as net_amount,
    coalesce(by_day.cost_amount, 0) as cost_amount,
    coalesce(by_day.net_amount, 0) - coalesce(by_day.cost_amount, 0) as gross_margin,
    coalesce(by_day.lines_without_cost, 0) as lines_without_cost,
    coalesce(by_day.order_count, 0) as order_count,
    coalesce(by_day.active_line_count, 0) as active_line_count,
    coalesce(by_day.cancelled_line_count, 0) as cancelled_line_count,
    coalesce(by_day.line_count, 0) as line_count,
    coalesce(channels.net_amount_by_channel, '{}'::jsonb) as net_amount_by_channel,
    high_water_mark.processed_through
from pairs
cross join high_water_mark
left join by_day
    on
        pairs.client_id = by_day.client_id
        and pairs.order_date = by_day.order_date
left join channels
    on
        pairs.client_id = channels.client_id
        and pairs.order_date = channels.order_date
