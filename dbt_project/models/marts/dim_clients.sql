-- Every client the warehouse knows of (see int_client_dimensions).
-- A view over the incremental intermediate table: the nightly run copies nothing.

{{ config(materialized='view') }}

select
    client_id,
    is_known_client,
    region,
    industry,
    manager_id,
    manager_team,
    acquisition_channel,
    potential_revenue,
    created_at
from {{ ref('int_client_dimensions') }}
