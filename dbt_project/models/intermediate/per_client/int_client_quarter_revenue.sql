-- Client net revenue, cost and gross margin per calendar quarter (as of D; the running
-- quarter is partial), for quarters with at least one non-cancelled line.
--
-- Per-client incremental (macros/changed_clients.sql): a nightly run recomputes the
-- quarters of the clients whose days changed; a client left without days keeps only its
-- placeholder row, which the post-hook removes.

{{
    config(
        indexes=[{'columns': ['client_id', 'quarter_start'], 'unique': True}, {'columns': ['quarter_start']}],
        post_hook=["{{ delete_placeholders('quarter_start') }}"]
    )
}}

with

{{ changed_clients_cte(revenue=ref('int_client_daily_revenue')) }}

results as (

    select
        client_id,
        {{ quarter_start('order_date') }} as quarter_start,
        sum(net_amount) as net_amount,
        sum(cost_amount) as cost_amount,
        sum(gross_margin) as gross_margin,
        count(*) filter (where is_purchase_day) as purchase_days,
        sum(order_count) as order_count,
        {{ build_marks(ref('int_client_daily_revenue'), ref('stg_crm__contacts'), ref('stg_erp__clients')) }}
    from {{ ref('int_client_days') }}
    where {{ changed_clients_filter('client_id') }}
    group by client_id, {{ quarter_start('order_date') }}

)

{{ with_placeholders('results') }}
