{{ config(materialized='view') }}

-- CRM contacts matched to a client, dated on or before D: the one way the marts read
-- contacts (loaded_at for the per-client incremental marts' change detection).

select
    contact_id,
    client_id,
    manager_id,
    contact_at,
    contact_date,
    channel,
    direction,
    outcome,
    loss_reason,
    nps_score,
    campaign_id,
    offer_type,
    offer_value,
    loaded_at
from {{ ref('stg_crm__contacts') }}
where
    client_id is not null
    and contact_date <= {{ as_of_date() }}
