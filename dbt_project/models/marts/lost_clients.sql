-- The win-back work list as of D: one row per client currently lost (its latest episode
-- has no return by D). Formulas of winback_priority and winback_rank are documented in
-- _marts__models.yml; the loyalty index is the fixed-scale one of every client
-- (macros/loyalty.sql, client_value shows the same value for a lost client).

with open_episodes as (

    select *
    from {{ ref('fct_lost_episodes') }}
    where not is_returned

),

history as (

    select histories.*
    from {{ ref('int_client_histories') }} as histories
    inner join open_episodes
        on histories.client_id = open_episodes.client_id

),

segment_before_loss as (

    {{ segment_before_loss('open_episodes', ref('fct_client_segments')) }}

),

contacts as (

    select *
    from {{ ref('int_contacts') }}
    where client_id in (select open_episodes.client_id from open_episodes)

),

contacts_since_lost as (

    select
        open_episodes.client_id,
        count(*) as contacts_since_lost
    from open_episodes
    inner join contacts
        on
            open_episodes.client_id = contacts.client_id
            and open_episodes.lost_date <= contacts.contact_date
    group by open_episodes.client_id

),

assembled as (

    select
        open_episodes.client_id,
        clients.region,
        clients.industry,
        clients.manager_id,
        clients.acquisition_channel,
        open_episodes.episode_number,
        open_episodes.lost_date,
        history.first_purchase_date,
        history.last_purchase_date,
        {{ as_of_date() }} - history.last_purchase_date as days_since_last_purchase,
        {{ as_of_date() }} - open_episodes.lost_date as days_lost,
        history.last_purchase_date - history.first_purchase_date as tenure_days,
        history.purchase_days,
        history.orders,
        history.lifetime_net_revenue,
        history.lifetime_gross_margin,
        open_episodes.revenue_lost_ttm as net_revenue_365d_before_lost,
        open_episodes.gross_margin_lost_ttm as gross_margin_365d_before_lost,
        segment_before_loss.segment_quarter_end,
        segment_before_loss.abc_class,
        segment_before_loss.xyz_class,
        segment_before_loss.abc_xyz_class,
        clients.potential_revenue as crm_potential_revenue,
        history.best_window_revenue as best_365d_revenue,
        coalesce(clients.potential_revenue, history.best_window_revenue) as potential_revenue,
        -- the potential at the client's own lifetime margin share (empty without revenue)
        round(
            coalesce(clients.potential_revenue, history.best_window_revenue)
            * history.lifetime_gross_margin / nullif(history.lifetime_net_revenue, 0), 2
        ) as potential_margin,
        case when clients.potential_revenue is not null then 'crm' else 'history' end as potential_source,
        nullif(open_episodes.loss_reason, 'unknown') as latest_loss_reason,
        latest_contacts.latest_nps_score,
        latest_contacts.latest_nps_date,
        latest_contacts.last_contact_date,
        latest_contacts.last_contact_manager_id,
        latest_contacts.last_contact_channel,
        latest_contacts.last_contact_outcome,
        coalesce(contacts_since_lost.contacts_since_lost, 0) as contacts_since_lost,
        contacts_since_lost.client_id is not null as contacted_since_lost
    from open_episodes
    inner join history
        on open_episodes.client_id = history.client_id
    left join segment_before_loss
        on open_episodes.client_id = segment_before_loss.client_id
    left join {{ ref('int_client_latest_contacts') }} as latest_contacts
        on open_episodes.client_id = latest_contacts.client_id
    left join contacts_since_lost
        on open_episodes.client_id = contacts_since_lost.client_id
    left join {{ ref('dim_clients') }} as clients
        on open_episodes.client_id = clients.client_id

),

scored as (

    select
        *,
        {{ loyalty_point_columns() }}
    from assembled

),

indexed as (

    select
        *,
        {{
            loyalty_index('recency_points', 'frequency_points', 'monetary_points', 'tenure_points', 'latest_nps_score')
        }} as loyalty_index,
        (purchase_days != 1 or coalesce(abc_class, 'N') not in ('C', 'N')) as winback_eligible
    from scored

),

prioritised as (

    -- winback_priority_basis: the potential revenue, or the potential margin
    select
        *,
        round(
            greatest(coalesce(
                {{ 'potential_margin' if var('winback_priority_basis') == 'margin' else 'potential_revenue' }}, 0
            ), 0) * loyalty_index / 10, 2
        ) as winback_priority
    from indexed

)

select
    client_id,
    region,
    industry,
    manager_id,
    acquisition_channel,
    episode_number,
    lost_date,
    first_purchase_date,
    last_purchase_date,
    days_since_last_purchase,
    days_lost,
    tenure_days,
    purchase_days,
    orders,
    lifetime_net_revenue,
    lifetime_gross_margin,
    net_revenue_365d_before_lost,
    gross_margin_365d_before_lost,
    segment_quarter_end,
    abc_class,
    xyz_class,
    abc_xyz_class,
    crm_potential_revenue,
    best_365d_revenue,
    potential_revenue,
    potential_margin,
    potential_source,
    latest_loss_reason,
    latest_nps_score,
    latest_nps_date,
    last_contact_date,
    last_contact_manager_id,
    last_contact_channel,
    last_contact_outcome,
    contacted_since_lost,
    contacts_since_lost,
    round(recency_points, 2) as recency_points,
    round(frequency_points, 2) as frequency_points,
    monetary_points,
    round(tenure_points, 2) as tenure_points,
    loyalty_index,
    winback_priority,
    row_number() over (
        order by winback_eligible desc, winback_priority desc, client_id asc
    ) as winback_rank,
    winback_eligible,
    -- the same list ranked by what it lost (the method's "by revenue, by purchases, by profit")
    row_number() over (order by net_revenue_365d_before_lost desc, client_id asc) as revenue_rank,
    row_number() over (order by purchase_days desc, orders desc, client_id asc) as purchase_rank,
    row_number() over (order by gross_margin_365d_before_lost desc, client_id asc) as margin_rank,
    {{ as_of_date() }} as as_of_date
from prioritised
