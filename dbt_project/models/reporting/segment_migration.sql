-- BI view: the ABC / XYZ / ABC-XYZ segment migration matrix in business terms
-- (documented in _reporting__models.yml).

select
    date_trunc('quarter', m.quarter_end)::date as quarter_start,
    m.quarter_end,
    m.segmentation,
    m.from_class as from_segment,
    m.to_class as to_segment,
    m.from_class = m.to_class as is_same_segment,
    m.clients,
    m.window_revenue as revenue_last_4_quarters,
    {{ as_of_date() }} as data_as_of_date
from {{ ref('fct_segment_migrations') }} as m
