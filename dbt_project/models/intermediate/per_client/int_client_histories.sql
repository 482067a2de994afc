-- One row per client with at least one client-day (non-cancelled line) dated <= D: its
-- first such day (the segments' population), its purchase history and its best
-- revenue_lost_window_days-day revenue (the "potential from history" of the work list,
-- lost_clients).
--
-- best_window_revenue: the maximum, over the client's days d, of its net revenue in
-- [d, d + revenue_lost_window_days - 1].
--
-- Per-client incremental (macros/changed_clients.sql): a nightly run recomputes the
-- clients whose days changed; a client left without days keeps only its placeholder
-- row, which the post-hook removes.

{{ config(post_hook=["{{ delete_placeholders('purchase_days') }}"]) }}

with

{{ changed_clients_cte(revenue=ref('int_client_daily_revenue')) }}

client_days as (

    select
        client_id,
        order_date,
        net_amount,
        gross_margin,
        order_count,
        is_purchase_day
    from {{ ref('int_client_days') }}
    where {{ changed_clients_filter('client_id') }}

),

history as (

    select
        client_id,
        min(order_date) as first_line_date,
        min(order_date) filter (where is_purchase_day) as first_purchase_date,
        max(order_date) filter (where is_purchase_day) as last_purchase_date,
        count(*) filter (where is_purchase_day) as purchase_days,
        sum(order_count) as orders,
        sum(net_amount) as lifetime_net_revenue,
        sum(gross_margin) as lifetime_gross_margin
    from client_days
    group by client_id

),

rolling_revenue as (

    select
        client_id,
        sum(net_amount) over (
            partition by client_id
            order by order_date
            range between current row
            and interval '{{ (var('revenue_lost_window_days') | int) - 1 }} days' following
        ) as revenue_in_window
    from client_days

),

best_windows as (

    select
        client_id,
        max(revenue_in_window) as best_window_revenue
    from rolling_revenue
    group by client_id

),

results as (

    select
        history.client_id,
        history.first_line_date,
        history.first_purchase_date,
        history.last_purchase_date,
        history.purchase_days,
        history.orders,
        history.lifetime_net_revenue,
        history.lifetime_gross_margin,
        best_windows.best_window_revenue,
        {{ build_marks(ref('int_client_daily_revenue'), ref('stg_crm__contacts'), ref('stg_erp__clients')) }}
    from history
    inner join best_windows
        on history.client_id = best_windows.client_id

)

{{ with_placeholders('results') }}
