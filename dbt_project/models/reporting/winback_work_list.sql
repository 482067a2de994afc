-- BI view: the win-back work list, the lost clients in the order to call them, with what
-- each lost in revenue and margin, its potential and the reason it gave (documented in
-- _reporting__models.yml).

select
    {{ as_of_date() }} as data_as_of_date,
    w.winback_rank,
    w.client_id,
    w.manager_id,
    w.region,
    w.industry,
    w.abc_xyz_class as segment_before_loss,
    w.lost_date,
    w.days_lost,
    w.net_revenue_365d_before_lost as revenue_12m_before_loss,
    w.gross_margin_365d_before_lost as gross_margin_12m_before_loss,
    w.potential_revenue,
    w.potential_margin,
    w.potential_source,
    w.latest_loss_reason as loss_reason,
    w.loyalty_index,
    w.winback_priority,
    w.winback_eligible,
    w.revenue_rank,
    w.purchase_rank,
    w.margin_rank,
    w.last_contact_date,
    w.contacted_since_lost,
    w.latest_nps_score
from {{ ref('lost_clients') }} as w
