-- Segment migrations per manager (the client's current manager): per quarter end and
-- segmentation, how many of the manager's clients moved up, down or stayed
-- (see int_segment_transitions for the class order).

select
    transitions.quarter_end,
    coalesce(clients.manager_id, 'unknown') as manager_id,
    transitions.segmentation,
    count(*) as clients,
    count(*) filter (where transitions.direction = 'up') as clients_up,
    count(*) filter (where transitions.direction = 'down') as clients_down,
    count(*) filter (where transitions.direction = 'same') as clients_same,
    {{ as_of_date() }} as as_of_date
from {{ ref('int_segment_transitions') }} as transitions
left join {{ ref('stg_erp__clients') }} as clients
    on transitions.client_id = clients.client_id
group by transitions.quarter_end, coalesce(clients.manager_id, 'unknown'), transitions.segmentation
