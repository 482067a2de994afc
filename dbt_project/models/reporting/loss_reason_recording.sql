-- BI view: per quarter of the loss and manager, how many lost clients have a loss reason
-- recorded in a contact after the loss (documented in _reporting__models.yml).

select
    {{ as_of_date() }} as data_as_of_date,
    {{ quarter_start('e.lost_date') }} as quarter_start,
    coalesce(e.manager_id, 'unknown') as manager_id,
    count(*) as lost_clients,
    count(*) filter (where e.loss_reason != 'unknown') as reason_recorded,
    round(cast(count(*) filter (where e.loss_reason != 'unknown') as numeric) / count(*), 4) as recording_rate
from {{ ref('fct_lost_episodes') }} as e
group by {{ quarter_start('e.lost_date') }}, coalesce(e.manager_id, 'unknown')
