-- BI view: every won-back client and the contact credited with the return
-- (documented in _reporting__models.yml).

select
    a.return_quarter as quarter_start,
    a.client_id,
    a.episode_number,
    a.lost_date,
    a.return_date,
    a.days_to_return as days_lost,
    a.revenue_recovered_90d as revenue_first_90_days,
    a.is_attributed,
    a.attributed_contact_id as credited_contact_id,
    a.attributed_contact_date as credited_contact_date,
    a.attributed_manager_id as credited_manager_id,
    a.attributed_channel as credited_channel,
    a.attributed_contact_outcome as credited_contact_outcome,
    a.days_from_contact_to_return,
    {{ as_of_date() }} as data_as_of_date
from {{ ref('fct_winback_attribution') }} as a
