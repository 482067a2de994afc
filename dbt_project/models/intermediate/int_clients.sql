{{ config(materialized='view') }}

-- The clients table with each client's manager team: the one way the marts read client
-- attributes. loaded_at is the later of the client's and its manager's delivery, so a
-- changed team counts as a change of the client for the per-client incremental marts.

select
    clients.client_id,
    clients.region,
    clients.industry,
    clients.manager_id,
    managers.team as manager_team,
    clients.acquisition_channel,
    clients.potential_revenue,
    clients.created_at,
    greatest(clients.loaded_at, managers.loaded_at) as loaded_at
from {{ ref('stg_erp__clients') }} as clients
left join {{ ref('stg_erp__managers') }} as managers
    on clients.manager_id = managers.manager_id
