-- BI view: the promoters (latest NPS answer 9-10) by lifetime value, the clients to ask
-- for references first (documented in _reporting__models.yml).

select
    {{ as_of_date() }} as data_as_of_date,
    row_number() over (order by v.ltv_rank) as promoter_rank,
    v.client_id,
    v.manager_id,
    v.region,
    v.industry,
    v.latest_nps_score,
    v.latest_nps_date,
    v.lifetime_net_revenue as lifetime_revenue,
    v.lifetime_gross_margin,
    v.loyalty_index,
    v.is_lost
from {{ ref('client_value') }} as v
where v.nps_category = 'promoter'
