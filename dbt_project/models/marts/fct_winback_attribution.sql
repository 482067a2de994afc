-- Win-back attribution: one row per return; the return is credited to the client's last
-- contact (manager, channel) dated in [return_date - attribution_window_days,
-- return_date] (the return day included), if any.

with returns as (

    select
        client_id,
        episode_number,
        lost_date,
        return_date,
        days_to_return,
        revenue_recovered_90d
    from {{ ref('fct_lost_episodes') }}
    where is_returned

),

credited as (

    select distinct on (returns.client_id, returns.episode_number)
        returns.client_id,
        returns.episode_number,
        contacts.contact_id,
        contacts.contact_date,
        contacts.manager_id,
        contacts.channel,
        contacts.outcome
    from returns
    inner join {{ ref('int_contacts') }} as contacts
        on
            returns.client_id = contacts.client_id
            and contacts.contact_date
            between returns.return_date - {{ var('attribution_window_days') }} and returns.return_date
    order by returns.client_id asc, returns.episode_number asc, contacts.contact_at desc, contacts.contact_id desc

)

select
    returns.client_id,
    returns.episode_number,
    returns.lost_date,
    returns.return_date,
    {{ quarter_start('returns.return_date') }} as return_quarter,
    returns.days_to_return,
    returns.revenue_recovered_90d,
    credited.contact_id is not null as is_attributed,
    credited.contact_id as attributed_contact_id,
    credited.contact_date as attributed_contact_date,
    credited.manager_id as attributed_manager_id,
    credited.channel as attributed_channel,
    credited.outcome as attributed_contact_outcome,
    returns.return_date - credited.contact_date as days_from_contact_to_return,
    {{ as_of_date() }} as as_of_date
from returns
left join credited
    on
        returns.client_id = credited.client_id
        and returns.episode_number = credited.episode_number
