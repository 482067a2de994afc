-- Per client with a client-day in the trend windows before D (w = at_risk_trend_window_days):
-- net revenue of the last w days (D - w, D], of the same days a year before
-- (D - 365 - w, D - 365], and of the last 365 days (D - 365, D]. The early-warning list's
-- revenue trend (at_risk_clients).
--
-- Per-client incremental (macros/changed_clients.sql): a night recomputes the clients
-- whose days changed and, as D moves on, those with a day that left or entered one of
-- the windows (revenue_windows); a client whose days all left them keeps only its
-- placeholder row, which the post-hook removes.

{%- set window_days = var('at_risk_trend_window_days') | int %}

{{ config(post_hook=["{{ delete_placeholders('revenue_12m') }}"]) }}

with

{{
    changed_clients_cte(
        revenue=ref('int_client_daily_revenue'),
        revenue_windows=[window_days, 365, 365 + window_days]
    )
}}

window_days as (

    select
        client_id,
        order_date,
        net_amount
    from {{ ref('int_client_days') }}
    where
        order_date > {{ as_of_date() }} - {{ 365 + window_days }}
        and {{ changed_clients_filter('client_id') }}

),

results as (

    select
        client_id,
        coalesce(sum(net_amount) filter (where order_date > {{ as_of_date() }} - {{ window_days }}), 0)
            as revenue_recent,
        coalesce(sum(net_amount) filter (where order_date <= {{ as_of_date() }} - 365), 0)
            as revenue_year_before,
        coalesce(sum(net_amount) filter (where order_date > {{ as_of_date() }} - 365), 0) as revenue_12m,
        {{ build_marks(ref('int_client_daily_revenue'), ref('stg_crm__contacts'), ref('stg_erp__clients')) }}
    from window_days
    group by client_id

)

{{ with_placeholders('results') }}
