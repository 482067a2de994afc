-- ABC-XYZ class per client and closed quarter end (see int_client_segments for the rules).

select
    client_id,
    quarter_end,
    window_revenue,
    abc_class,
    xyz_class,
    abc_xyz_class,
    abc_rank,
    share_before,
    xyz_cv,
    {{ as_of_date() }} as as_of_date
from {{ ref('int_client_segments') }}
