-- The segment migration matrix (see int_segment_migrations).
-- A view over the incremental intermediate table: the nightly run copies nothing
-- and as_of_date is the D of the marts' build.

{{ config(materialized='view') }}

select
    quarter_end,
    segmentation,
    from_class,
    to_class,
    clients,
    window_revenue,
    {{ as_of_date() }} as as_of_date
from {{ ref('int_segment_migrations') }}
