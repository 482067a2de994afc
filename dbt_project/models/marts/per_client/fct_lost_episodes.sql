-- Lost episodes with their money, contact and dimension figures (as of D).
--
-- revenue_lost_ttm / gross_margin_lost_ttm: net revenue / net - cost with order_date in
--   [lost_date - revenue_lost_window_days, lost_date - 1].
-- revenue_recovered_90d / gross_margin_recovered_90d: net revenue / net - cost in
--   [return_date, return_date + recovered window - 1] (days <= D only);
--   recovered_window_complete: that window has ended by D.
-- is_contacted_after_loss: a contact with contact_date in
--   [lost_date, lost_date + contact_after_loss_days].
-- Dimensions (the KPI breakdown and the cohort return rates use them):
--   manager_id, region, industry: the client's current attributes ('unknown' if absent);
--   sales_channel: the channel with the most net revenue in the revenue_lost window before
--     lost_date (ties: alphabetical; 'unknown' without sales in the window);
--   loss_reason: the latest loss_reason given in a contact dated from the day after the
--     last purchase to the day before the return (or D) ('unknown' if none).

--
-- Per-client incremental, like int_purchase_days (macros/changed_clients.sql); computed_as_of
-- (the D of the run that last computed the client) and processed_through are bookkeeping.
-- A re-delivered clients row recomputes the client only with an L per industry (its lost
-- dates may move); otherwise a post-hook sets the changed manager, region and industry
-- (refresh_client_attributes).

{{
    config(
        post_hook=[
            "{{ delete_placeholders('episode_number') }}",
            "{{ refresh_client_attributes(ref('int_clients'), ['manager_id', 'region', 'industry']) }}"
        ]
    )
}}

{#- Read only by an incremental run (its lost-dates trigger); set here, outside that
    branch, so that dbt's graph shows it as a parent. -#}
{%- set purchase_days = ref('int_purchase_days') %}

with

{{
    changed_clients_cte(
        revenue=ref('int_client_daily_revenue'),
        contacts=ref('int_contacts'),
        clients=ref('int_clients') if var('lost_after_days_by_industry') else none,
        lost_dates=purchase_days,
        recovered_windows=ref('int_lost_episodes')
    )
}}

episodes as (

    select
        client_id,
        episode_number,
        last_purchase_date,
        lost_date,
        return_date,
        days_to_return,
        is_returned,
        threshold_days
    from {{ ref('int_lost_episodes') }}
    where {{ changed_clients_filter('client_id') }}

),

client_days as (

    select *
    from {{ ref('int_client_days') }}
    where {{ changed_clients_filter('client_id') }}

),

contacts as (

    select *
    from {{ ref('int_contacts') }}
    where {{ changed_clients_filter('client_id') }}

),

lost_revenue as (

    select
        episodes.client_id,
        episodes.episode_number,
        coalesce(sum(client_days.net_amount), 0) as revenue_lost_ttm,
        coalesce(sum(client_days.gross_margin), 0) as gross_margin_lost_ttm
    from episodes
    left join client_days
        on
            episodes.client_id = client_days.client_id
            and client_days.order_date
            between episodes.lost_date - {{ var('revenue_lost_window_days') }} and episodes.lost_date - 1
    group by episodes.client_id, episodes.episode_number

),

recovered_revenue as (

    select
        episodes.client_id,
        episodes.episode_number,
        coalesce(sum(client_days.net_amount), 0) as revenue_recovered_90d,
        coalesce(sum(client_days.gross_margin), 0) as gross_margin_recovered_90d
    from episodes
    left join client_days
        on
            episodes.client_id = client_days.client_id
            and client_days.order_date
            between episodes.return_date
            and episodes.return_date + {{ var('revenue_recovered_window_days') }} - 1
    where episodes.is_returned
    group by episodes.client_id, episodes.episode_number

),

dominant_channel as (

    {{ dominant_channel(
        'episodes', ['client_id', 'episode_number'],
        'periods.lost_date - ' ~ var('revenue_lost_window_days'), 'periods.lost_date - 1',
        ref('int_client_channel_days')
    ) }}

),

loss_reasons as (

    select distinct on (episodes.client_id, episodes.episode_number)
        episodes.client_id,
        episodes.episode_number,
        contacts.loss_reason
    from episodes
    inner join contacts
        on
            episodes.client_id = contacts.client_id
            and episodes.last_purchase_date < contacts.contact_date
            and contacts.contact_date < coalesce(episodes.return_date, {{ as_of_date() }} + 1)
    where contacts.loss_reason is not null
    order by
        episodes.client_id asc,
        episodes.episode_number asc,
        contacts.contact_at desc,
        contacts.contact_id desc

),

contacted as (

    select distinct
        episodes.client_id,
        episodes.episode_number
    from episodes
    inner join contacts
        on
            episodes.client_id = contacts.client_id
            and contacts.contact_date
            between episodes.lost_date and episodes.lost_date + {{ var('contact_after_loss_days') }}

),

results as (

    select
        episodes.client_id,
        episodes.episode_number,
        episodes.last_purchase_date,
        episodes.lost_date,
        episodes.return_date,
        episodes.days_to_return,
        episodes.is_returned,
        episodes.threshold_days,
        lost_revenue.revenue_lost_ttm,
        lost_revenue.gross_margin_lost_ttm,
        recovered_revenue.revenue_recovered_90d,
        recovered_revenue.gross_margin_recovered_90d,
        episodes.return_date + {{ var('revenue_recovered_window_days') }} - 1
        <= {{ as_of_date() }} as recovered_window_complete,
        contacted.client_id is not null as is_contacted_after_loss,
        coalesce(clients.manager_id, 'unknown') as manager_id,
        coalesce(clients.region, 'unknown') as region,
        coalesce(clients.industry, 'unknown') as industry,
        coalesce(dominant_channel.sales_channel, 'unknown') as sales_channel,
        coalesce(loss_reasons.loss_reason, 'unknown') as loss_reason,
        {{ build_marks(ref('int_client_daily_revenue'), ref('int_contacts'), ref('int_clients')) }}
    from episodes
    inner join lost_revenue
        on
            episodes.client_id = lost_revenue.client_id
            and episodes.episode_number = lost_revenue.episode_number
    left join recovered_revenue
        on
            episodes.client_id = recovered_revenue.client_id
            and episodes.episode_number = recovered_revenue.episode_number
    left join contacted
        on
            episodes.client_id = contacted.client_id
            and episodes.episode_number = contacted.episode_number
    left join dominant_channel
        on
            episodes.client_id = dominant_channel.client_id
            and episodes.episode_number = dominant_channel.episode_number
    left join loss_reasons
        on
            episodes.client_id = loss_reasons.client_id
            and episodes.episode_number = loss_reasons.episode_number
    left join {{ ref('int_clients') }} as clients
        on episodes.client_id = clients.client_id

)

{{ with_placeholders('results') }}
