-- Who counts in which quarterly KPI, one row per (closed quarter, member_type, member),
-- with the member's breakdown dimensions. member_type:
--   active_start  a client with a purchase day before Q and not lost on Q's eve
--   new           a client whose first purchase day is in Q
--   pool_start    a client lost on Q's eve (its open episode: lost_date < Q start and no
--                 return before Q start)
--   lost          an episode with lost_date in Q
--   returned      an episode with return_date in Q
-- Episode members carry the episode's dimensions (fct_lost_episodes). Client
-- members carry the client's manager / region / industry and, as sales_channel, the
-- channel with the most net revenue in [Q start - revenue_lost_window_days, Q end]
-- ('unknown' without sales there); loss_reason does not apply to them (null).

with quarters as (

    select
        quarter_start,
        quarter_end
    from {{ ref('int_quarters') }}

),

episodes as (

    select * from {{ ref('fct_lost_episodes') }}

),

first_purchases as (

    select
        client_id,
        min(purchase_date) as first_purchase_date
    from {{ ref('int_purchase_days') }}
    group by client_id

),

episode_members as (

    select
        quarters.quarter_start,
        'lost' as member_type,
        episodes.*
    from quarters
    inner join episodes
        on episodes.lost_date between quarters.quarter_start and quarters.quarter_end

    union all

    select
        quarters.quarter_start,
        'returned' as member_type,
        episodes.*
    from quarters
    inner join episodes
        on episodes.return_date between quarters.quarter_start and quarters.quarter_end

    union all

    select
        quarters.quarter_start,
        'pool_start' as member_type,
        episodes.*
    from quarters
    inner join episodes
        on
            quarters.quarter_start > episodes.lost_date
            and (episodes.return_date is null or quarters.quarter_start <= episodes.return_date)

),

client_members as (

    select
        quarters.quarter_start,
        quarters.quarter_end,
        'active_start' as member_type,
        first_purchases.client_id
    from quarters
    inner join first_purchases
        on quarters.quarter_start > first_purchases.first_purchase_date
    where not exists (
            select 1
            from episode_members as pool
            where
                pool.member_type = 'pool_start'
                and pool.quarter_start = quarters.quarter_start
                and pool.client_id = first_purchases.client_id
        )

    union all

    select
        quarters.quarter_start,
        quarters.quarter_end,
        'new' as member_type,
        first_purchases.client_id
    from quarters
    inner join first_purchases
        on first_purchases.first_purchase_date between quarters.quarter_start and quarters.quarter_end

),

client_quarters as (

    select distinct
        quarter_start,
        quarter_end,
        client_id
    from client_members

),

client_channels as (

    {{ dominant_channel(
        'client_quarters', ['quarter_start', 'client_id'],
        'periods.quarter_start - ' ~ var('revenue_lost_window_days'), 'periods.quarter_end',
        ref('int_client_channel_days')
    ) }}

)

select
    episode_members.quarter_start,
    episode_members.member_type,
    episode_members.client_id,
    episode_members.episode_number,
    episode_members.manager_id,
    episode_members.region,
    episode_members.industry,
    episode_members.sales_channel,
    episode_members.loss_reason,
    episode_members.revenue_lost_ttm,
    episode_members.revenue_recovered_90d,
    episode_members.gross_margin_lost_ttm,
    episode_members.gross_margin_recovered_90d,
    episode_members.recovered_window_complete,
    episode_members.days_to_return,
    episode_members.is_contacted_after_loss
from episode_members

union all

select
    client_members.quarter_start,
    client_members.member_type,
    client_members.client_id,
    cast(null as bigint) as episode_number,
    coalesce(clients.manager_id, 'unknown') as manager_id,
    coalesce(clients.region, 'unknown') as region,
    coalesce(clients.industry, 'unknown') as industry,
    coalesce(client_channels.sales_channel, 'unknown') as sales_channel,
    cast(null as text) as loss_reason,
    cast(null as numeric) as revenue_lost_ttm,
    cast(null as numeric) as revenue_recovered_90d,
    cast(null as numeric) as gross_margin_lost_ttm,
    cast(null as numeric) as gross_margin_recovered_90d,
    cast(null as boolean) as recovered_window_complete,
    cast(null as integer) as days_to_return,
    cast(null as boolean) as is_contacted_after_loss
from client_members
left join client_channels
    on
        client_members.quarter_start = client_channels.quarter_start
        and client_members.client_id = client_channels.client_id
left join {{ ref('stg_erp__clients') }} as clients
    on client_members.client_id = clients.client_id
