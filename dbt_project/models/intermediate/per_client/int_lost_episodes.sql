-- Lost episodes. A purchase day p starts an episode on lost_date = p + T + 1 (T = the
-- client's threshold, L by default) when the next purchase day is later than lost_date,
-- or when there is none and lost_date <= D. The episode ends with a return on the first
-- purchase day after lost_date, which is the next purchase day. A next purchase day equal
-- to lost_date means the client was never lost (on that day it bought).
--
-- Per-client incremental, like int_purchase_days (macros/changed_clients.sql).

{{ config(post_hook=["{{ delete_placeholders('episode_number') }}"]) }}

{#- Clients: read only with an L per industry (a changed industry moves the lost dates); set
    here, outside that condition, so that dbt's graph always shows it as a parent. -#}
{%- set clients = ref('int_clients') %}

with

{{
    changed_clients_cte(
        revenue=ref('int_client_daily_revenue'),
        clients=clients if var('lost_after_days_by_industry') else none,
        lost_dates=ref('int_purchase_days')
    )
}}

candidates as (

    select
        client_id,
        purchase_date as last_purchase_date,
        purchase_date + threshold_days + 1 as lost_date,
        next_purchase_date,
        threshold_days
    from {{ ref('int_purchase_days') }}
    where {{ changed_clients_filter('client_id') }}

),

episodes as (

    select *
    from candidates
    where
        next_purchase_date > lost_date
        or (next_purchase_date is null and lost_date <= {{ as_of_date() }})

),

results as (

    select
        client_id,
        row_number() over (partition by client_id order by lost_date) as episode_number,
        last_purchase_date,
        lost_date,
        next_purchase_date as return_date,
        next_purchase_date - lost_date as days_to_return,
        next_purchase_date is not null as is_returned,
        threshold_days,
        {{ build_marks(ref('int_client_daily_revenue'), ref('stg_crm__contacts'), ref('stg_erp__clients')) }}
    from episodes

)

{{ with_placeholders('results') }}
