-- BI view: per quarter and manager, the clients that moved up, down or kept their
-- segment (documented in _reporting__models.yml).

select
    date_trunc('quarter', m.quarter_end)::date as quarter_start,
    m.quarter_end,
    m.manager_id,
    m.segmentation,
    m.clients,
    m.clients_up as clients_moved_up,
    m.clients_down as clients_moved_down,
    m.clients_same as clients_unchanged,
    {{ as_of_date() }} as data_as_of_date
from {{ ref('fct_manager_segment_migrations') }} as m
