-- Win-back campaign results (docs/metrics.md, "Win-back campaigns"): per campaign,
-- segment (ABC class before the loss) and offer type, the lost episodes targeted and
-- reached, those returned within each window of var campaign_return_windows_days from
-- their first campaign contact, the revenue and margin recovered by those returned within
-- the longest window, the offers redeemed by them, the campaign's fixed cost shared by
-- targeted episodes, and the net margin. A campaign without a campaigns row still counts
-- (name, dates and cost unknown; cost 0).
{%- set windows = var('campaign_return_windows_days') %}
{%- set longest = windows | max %}

with episodes as (

    select * from {{ ref('int_campaign_episodes') }}

),

grouped as (

    select
        campaign_id,
        abc_class,
        offer_type,
        count(*) as targeted_episodes,
        count(*) filter (where is_reached) as reached_episodes,
        {%- for days in windows %}
            count(*) filter (where returned_{{ days }}d) as returned_{{ days }}d,
            bool_and(window_complete_{{ days }}d) as window_complete_{{ days }}d,
        {%- endfor %}
        coalesce(sum(revenue_recovered_90d) filter (where returned_{{ longest }}d), 0) as revenue_recovered,
        coalesce(sum(gross_margin_recovered_90d) filter (where returned_{{ longest }}d), 0)
            as gross_margin_recovered,
        coalesce(sum(offer_value) filter (where returned_{{ longest }}d), 0) as offer_cost
    from episodes
    group by campaign_id, abc_class, offer_type

),

costed as (

    select
        grouped.*,
        campaigns.campaign_name,
        campaigns.start_date,
        campaigns.end_date,
        campaigns.target_segment,
        coalesce(campaigns.campaign_cost, 0)
        * grouped.targeted_episodes
        / sum(grouped.targeted_episodes) over (partition by grouped.campaign_id) as campaign_cost
    from grouped
    left join {{ ref('stg_crm__campaigns') }} as campaigns
        on grouped.campaign_id = campaigns.campaign_id

)

select
    campaign_id,
    campaign_name,
    start_date,
    end_date,
    target_segment,
    abc_class,
    offer_type,
    targeted_episodes,
    reached_episodes,
    {%- for days in windows %}
        returned_{{ days }}d,
        window_complete_{{ days }}d,
    {%- endfor %}
    round(returned_{{ longest }}d::numeric / targeted_episodes, 4) as return_rate,
    revenue_recovered,
    gross_margin_recovered,
    offer_cost,
    round(campaign_cost, 2) as campaign_cost,
    round(gross_margin_recovered - offer_cost - campaign_cost, 2) as net_margin
from costed
