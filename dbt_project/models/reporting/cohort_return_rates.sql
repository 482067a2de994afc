-- BI view: return rates by lost cohort (documented in _reporting__models.yml).

select
    c.cohort_quarter,
    c.dimension,
    c.dimension_value,
    c.lost_episodes as lost_clients,
    c.returned_within_90 as returned_within_90_days,
    c.returned_within_180 as returned_within_180_days,
    c.returned_within_365 as returned_within_365_days,
    c.return_rate_90 as return_rate_90_days,
    c.return_rate_180 as return_rate_180_days,
    c.return_rate_365 as return_rate_365_days,
    c.window_closed_90 as is_final_90_days,
    c.window_closed_180 as is_final_180_days,
    c.window_closed_365 as is_final_365_days,
    {{ as_of_date() }} as data_as_of_date
from {{ ref('fct_cohort_return_rates') }} as c
