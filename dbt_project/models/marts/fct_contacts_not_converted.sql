-- Contacted but not converted, per client and quarter (see int_contacts_not_converted).
-- A view over the incremental intermediate table: the nightly run copies nothing
-- and as_of_date is the D of the marts' build.

{{ config(materialized='view') }}

select
    client_id,
    quarter_start,
    contacts_not_converted,
    contacts_judged,
    first_contact_date,
    last_contact_date,
    last_contact_manager_id,
    last_contact_channel,
    last_contact_outcome,
    managers_involved,
    managers_count,
    {{ as_of_date() }} as as_of_date
from {{ ref('int_contacts_not_converted') }}
