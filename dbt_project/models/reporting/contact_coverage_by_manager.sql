-- BI view: per manager, how many of its active A and B clients (the key accounts, by the
-- class at the last closed quarter end) had a contact in the last
-- contact_coverage_window_days days ("call them at least every two months"; documented
-- in _reporting__models.yml).

select
    {{ as_of_date() }} as data_as_of_date,
    coalesce(v.manager_id, 'unknown') as manager_id,
    count(*) as key_clients,
    count(*) filter (
        where v.days_since_last_contact < {{ var('contact_coverage_window_days') | int }}
    ) as key_clients_contacted,
    round(
        cast(count(*) filter (
            where v.days_since_last_contact < {{ var('contact_coverage_window_days') | int }}
        ) as numeric) / count(*), 4
    ) as contact_coverage
from {{ ref('client_value') }} as v
where not v.is_lost and v.abc_class in ('A', 'B')
group by coalesce(v.manager_id, 'unknown')
