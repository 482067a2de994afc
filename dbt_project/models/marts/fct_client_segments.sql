-- ABC-XYZ class per client and closed quarter end (see int_client_segments for the rules).
-- A view: a projection of an incremental intermediate table, so the nightly run
-- copies nothing and as_of_date follows D.

{{ config(materialized='view') }}

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
