-- BI view: what each win-back campaign brought back, per segment (ABC class before the
-- loss) and offer type, with its costs and net margin (fct_campaign_results). The uplift
-- against clients nobody contacted is in reporting.campaign_uplift.

select
    campaign_id,
    campaign_name,
    start_date,
    end_date,
    target_segment,
    abc_class as segment,
    offer_type,
    targeted_episodes as clients_targeted,
    reached_episodes as clients_reached,
    {%- for days in var('campaign_return_windows_days') %}
        returned_{{ days }}d as returned_within_{{ days }}_days,
    {%- endfor %}
    returned_{{ var('campaign_return_windows_days') | max }}d as clients_returned,
    return_rate,
    revenue_recovered,
    gross_margin_recovered,
    offer_cost,
    campaign_cost,
    net_margin,
    {{ as_of_date() }} as data_as_of_date
from {{ ref('fct_campaign_results') }}
order by start_date desc nulls last, campaign_id asc, abc_class asc, offer_type asc
