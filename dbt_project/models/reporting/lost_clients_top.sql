-- BI view: the clients that became lost, per quarter, ranked by the revenue of the 12
-- months before (documented in _reporting__models.yml).

select
    date_trunc('quarter', e.lost_date)::date as quarter_start,
    row_number() over (
        partition by date_trunc('quarter', e.lost_date)
        order by e.revenue_lost_ttm desc nulls last, e.client_id asc, e.episode_number asc
    ) as revenue_rank,
    e.client_id,
    e.episode_number,
    e.last_purchase_date,
    e.lost_date,
    e.revenue_lost_ttm as revenue_12m_before_loss,
    e.gross_margin_lost_ttm as gross_margin_12m_before_loss,
    e.loss_reason,
    e.manager_id,
    e.region,
    e.industry,
    e.sales_channel,
    coalesce(w.potential_revenue, d.potential_revenue) as potential_revenue,
    case
        when w.client_id is not null then w.potential_source
        when d.potential_revenue is not null then 'crm'
    end as potential_source,
    e.is_contacted_after_loss as contacted_within_30_days,
    e.is_returned as has_returned,
    e.return_date,
    w.winback_rank,
    {{ as_of_date() }} as data_as_of_date
from {{ ref('fct_lost_episodes') }} as e
left join {{ ref('lost_clients') }} as w
    on e.client_id = w.client_id and e.episode_number = w.episode_number
left join {{ ref('dim_clients') }} as d
    on e.client_id = d.client_id
