-- The cells of the campaigns' uplift against a baseline (docs/metrics.md, "Uplift against
-- a baseline"): per campaign, offer type and cell (lost quarter, segment, entry month m),
-- the targeted episodes and those returned within the longest campaign window of their
-- entry, and the cell's comparison episodes (same lost quarter and segment, open on m,
-- no contact at all from lost_date to m + window) and those returned in (m, m + window].
-- Only cells whose window has passed for every episode by D, with a comparison episode.
-- winback.analytics.campaign_uplift pools the cells into uplifts with confidence intervals.
{%- set window = var('campaign_return_windows_days') | max %}

with treated as (

    select
        campaign_id,
        offer_type,
        lost_quarter,
        abc_class,
        {{ month_start('entry_date') }} as entry_month,
        returned_{{ window }}d as is_returned
    from {{ ref('int_campaign_episodes') }}

),

cells as (

    select distinct
        lost_quarter,
        abc_class,
        entry_month
    from treated
    -- every entry of the month has had its whole window by D
    where entry_month + interval '1 month' + interval '{{ window }} days' <= {{ as_of_date() }} + 1

),

comparison as (

    select
        cells.lost_quarter,
        cells.abc_class,
        cells.entry_month,
        count(*) as comparison_episodes,
        count(*) filter (where episodes.return_date <= cells.entry_month + {{ window }}) as comparison_returned
    from cells
    inner join {{ ref('int_lost_episode_segments') }} as episodes
        on
            cells.lost_quarter = episodes.lost_quarter
            and cells.abc_class = episodes.abc_class
            and cells.entry_month >= episodes.lost_date
            and (episodes.return_date is null or cells.entry_month < episodes.return_date)
    where not exists (
            select 1
            from {{ ref('int_contacts') }} as contacts
            where
                contacts.client_id = episodes.client_id
                and contacts.contact_date between episodes.lost_date and cells.entry_month + {{ window }}
        )
    group by cells.lost_quarter, cells.abc_class, cells.entry_month

)

select
    treated.campaign_id,
    treated.offer_type,
    treated.lost_quarter,
    treated.abc_class,
    treated.entry_month,
    count(*) as treated_episodes,
    count(*) filter (where treated.is_returned) as treated_returned,
    comparison.comparison_episodes,
    comparison.comparison_returned
from treated
inner join comparison
    on
        treated.lost_quarter = comparison.lost_quarter
        and treated.abc_class = comparison.abc_class
        and treated.entry_month = comparison.entry_month
group by
    treated.campaign_id,
    treated.offer_type,
    treated.lost_quarter,
    treated.abc_class,
    treated.entry_month,
    comparison.comparison_episodes,
    comparison.comparison_returned
