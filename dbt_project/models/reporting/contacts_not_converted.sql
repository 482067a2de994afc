-- BI view: clients contacted in a quarter that did not buy within 30 days of the contact
-- (documented in _reporting__models.yml).

select
    n.quarter_start,
    n.client_id,
    n.contacts_not_converted,
    n.contacts_judged,
    n.first_contact_date,
    n.last_contact_date,
    n.last_contact_manager_id,
    n.last_contact_channel,
    n.last_contact_outcome,
    n.managers_involved,
    n.managers_count,
    {{ as_of_date() }} as data_as_of_date
from {{ ref('fct_contacts_not_converted') }} as n
