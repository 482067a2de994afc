-- Every client the warehouse knows of: the clients table plus client ids that only appear
-- in sales lines or contacts (a late-arriving dimension: the client exists with unknown
-- attributes until its row arrives; is_known_client says whether it has). No PII.

with client_ids as (

    select client_id from {{ ref('stg_erp__clients') }}
    union
    select client_id from {{ ref('int_client_daily_revenue') }}
    union
    select client_id from {{ ref('stg_crm__contacts') }}
    where client_id is not null

)

select
    client_ids.client_id,
    clients.client_id is not null as is_known_client,
    clients.region,
    clients.industry,
    clients.manager_id,
    managers.team as manager_team,
    clients.acquisition_channel,
    clients.potential_revenue,
    clients.created_at
from client_ids
left join {{ ref('stg_erp__clients') }} as clients
    on client_ids.client_id = clients.client_id
left join {{ ref('stg_erp__managers') }} as managers
    on clients.manager_id = managers.manager_id
