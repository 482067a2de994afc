-- Segment migrations per manager (see int_manager_segment_migrations).
-- A view over the incremental intermediate table: the nightly run copies nothing
-- and as_of_date is the D of the marts' build.

{{ config(materialized='view') }}

select
    quarter_end,
    manager_id,
    segmentation,
    clients,
    clients_up,
    clients_down,
    clients_same,
    {{ as_of_date() }} as as_of_date
from {{ ref('int_manager_segment_migrations') }}
