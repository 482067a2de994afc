-- BI view: every client's lifetime value (LTV) and fixed-scale loyalty index, the most
-- profitable first (documented in _reporting__models.yml).

select
    {{ as_of_date() }} as data_as_of_date,
    v.ltv_rank,
    v.client_id,
    v.manager_id,
    v.region,
    v.industry,
    v.is_lost,
    v.first_purchase_date,
    v.last_purchase_date,
    v.purchase_days,
    v.lifetime_net_revenue as lifetime_revenue,
    v.lifetime_gross_margin,
    v.abc_class,
    v.loyalty_index,
    v.recency_points,
    v.frequency_points,
    v.monetary_points,
    v.tenure_points,
    v.latest_nps_score,
    v.nps_category,
    v.days_since_last_contact
from {{ ref('client_value') }} as v
