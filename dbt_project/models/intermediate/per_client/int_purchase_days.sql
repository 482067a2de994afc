-- Purchase days (dates <= D with client net revenue > 0), each with the previous and the
-- next purchase day of the client and the client's lost threshold in days
-- (macros/lost_threshold.sql): L = var lost_after_days, or its industry's L (var
-- lost_after_days_by_industry), or with the optional adaptive rule (var
-- adaptive_threshold_enabled) clamp(ceil(k x median gap between purchase days), min, max)
-- for clients with at least two purchase days. The adaptive threshold is computed from
-- all purchase days <= D and applies to the client's whole history; so does the industry.
--
-- Per-client incremental (macros/changed_clients.sql): a nightly run recomputes the
-- clients whose days changed, and with an L per industry those whose clients row was
-- re-delivered (without one, a manager reassigning thousands of clients must not
-- recompute their purchase days); a client left without purchase days keeps only its
-- placeholder row, which the post-hook removes.

{{
    config(
        indexes=[{'columns': ['client_id', 'purchase_date'], 'unique': True}, {'columns': ['purchase_date']}],
        post_hook=["{{ delete_placeholders('purchase_date') }}"]
    )
}}

{#- The clients' industries are read only with an L per industry (without one the join
    is pure cost); set here, outside that branch, so that dbt's graph shows the parent. -#}
{%- set clients = ref('int_clients') %}

with

{{
    changed_clients_cte(
        revenue=ref('int_client_daily_revenue'),
        clients=clients if var('lost_after_days_by_industry') else none
    )
}}

purchase_days as (

    select
        client_id,
        order_date as purchase_date,
        net_amount,
        order_count
    from {{ ref('int_client_days') }}
    where is_purchase_day and {{ changed_clients_filter('client_id') }}

),

sequenced as (

    select
        client_id,
        purchase_date,
        net_amount,
        order_count,
        row_number() over by_client as purchase_day_number,
        lag(purchase_date) over by_client as previous_purchase_date,
        lead(purchase_date) over by_client as next_purchase_date
    from purchase_days
    window by_client as (partition by client_id order by purchase_date)

),

gaps as (

    select
        client_id,
        percentile_cont(0.5) within group (
            order by purchase_date - previous_purchase_date
        ) as median_gap_days
    from sequenced
    where previous_purchase_date is not null
    group by client_id

),

results as (

    select
        sequenced.client_id,
        sequenced.purchase_date,
        sequenced.purchase_day_number,
        sequenced.previous_purchase_date,
        sequenced.next_purchase_date,
        sequenced.net_amount,
        sequenced.order_count,
        gaps.median_gap_days,
        {{ lost_threshold_days('gaps.median_gap_days', 'clients.industry') }} as threshold_days,
        {{ build_marks(ref('int_client_daily_revenue'), ref('stg_crm__contacts'), ref('stg_erp__clients')) }}
    from sequenced
    left join gaps
        on sequenced.client_id = gaps.client_id
    {% if var('lost_after_days_by_industry') -%}
        left join {{ clients }} as clients
            on sequenced.client_id = clients.client_id
    {%- endif %}

)

{{ with_placeholders('results') }}
