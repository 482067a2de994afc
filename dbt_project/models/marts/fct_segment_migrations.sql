-- The segment migration matrix: per quarter end, segmentation and (from_class, to_class)
-- the number of clients and the sum of their window revenue at this quarter end.

select
    quarter_end,
    segmentation,
    from_class,
    to_class,
    count(*) as clients,
    sum(window_revenue) as window_revenue,
    {{ as_of_date() }} as as_of_date
from {{ ref('int_segment_transitions') }}
group by quarter_end, segmentation, from_class, to_class
