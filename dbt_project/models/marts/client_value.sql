-- Value and loyalty of every client as of D (docs/metrics.md, "Value and loyalty"): one row
-- per client with a purchase day <= D, active or lost. LTV is what the client has brought
-- over the whole relationship: its lifetime net revenue and gross margin (net - cost);
-- ltv_rank ranks by the margin. The loyalty index is on a fixed scale (macros/loyalty.sql)
-- from recency, frequency, the ABC class, tenure and the latest NPS answer; the class is
-- the one at the last closed quarter end, for a lost client the one before its loss (the
-- work list's, so both lists show the same index).
--
-- Rebuilt whole each night (recency moves with D) from per-client inputs.

with histories as (

    select
        client_id,
        first_purchase_date,
        last_purchase_date,
        purchase_days,
        orders,
        lifetime_net_revenue,
        lifetime_gross_margin
    from {{ ref('int_client_histories') }}
    where purchase_days > 0

),

latest_segments as (

    -- The last closed quarter end holds every client with a line up to it (by its index).
    select
        segments.client_id,
        segments.abc_class
    from {{ ref('fct_client_segments') }} as segments
    where segments.quarter_end = (select max(closed.quarter_end) from {{ ref('fct_client_segments') }} as closed)

),

assembled as (

    select
        histories.client_id,
        clients.manager_id,
        clients.region,
        clients.industry,
        histories.first_purchase_date,
        histories.last_purchase_date,
        {{ as_of_date() }} - histories.last_purchase_date as days_since_last_purchase,
        histories.last_purchase_date - histories.first_purchase_date as tenure_days,
        histories.purchase_days,
        histories.orders,
        histories.lifetime_net_revenue,
        histories.lifetime_gross_margin,
        lost.client_id is not null as is_lost,
        case when lost.client_id is not null then lost.abc_class else latest_segments.abc_class end as abc_class,
        contacts.last_contact_date,
        {{ as_of_date() }} - contacts.last_contact_date as days_since_last_contact,
        contacts.latest_nps_score,
        contacts.latest_nps_date,
        {{ nps_category('contacts.latest_nps_score') }} as nps_category
    from histories
    left join {{ ref('dim_clients') }} as clients
        on histories.client_id = clients.client_id
    left join {{ ref('lost_clients') }} as lost
        on histories.client_id = lost.client_id
    left join latest_segments
        on histories.client_id = latest_segments.client_id
    left join {{ ref('int_client_latest_contacts') }} as contacts
        on histories.client_id = contacts.client_id

),

scored as (

    select
        *,
        {{ loyalty_point_columns() }}
    from assembled

)

select
    client_id,
    manager_id,
    region,
    industry,
    first_purchase_date,
    last_purchase_date,
    days_since_last_purchase,
    tenure_days,
    purchase_days,
    orders,
    lifetime_net_revenue,
    lifetime_gross_margin,
    row_number() over (order by lifetime_gross_margin desc, client_id asc) as ltv_rank,
    is_lost,
    abc_class,
    last_contact_date,
    days_since_last_contact,
    latest_nps_score,
    latest_nps_date,
    nps_category,
    round(recency_points, 2) as recency_points,
    round(frequency_points, 2) as frequency_points,
    monetary_points,
    round(tenure_points, 2) as tenure_points,
    {{ loyalty_index('recency_points', 'frequency_points', 'monetary_points', 'tenure_points', 'latest_nps_score') }}
        as loyalty_index,
    {{ as_of_date() }} as as_of_date
from scored
