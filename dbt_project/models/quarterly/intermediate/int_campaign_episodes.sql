-- The lost episodes each win-back campaign targeted (docs/metrics.md, "Win-back
-- campaigns"): one row per campaign and episode open on the date of one of the client's
-- contacts of that campaign, entered on the first of them, with its offer, whether the
-- campaign reached the client and whether the client returned within each window of var
-- campaign_return_windows_days from entry_date.
{%- set windows = var('campaign_return_windows_days') %}

with campaign_contacts as (

    select
        contact_id,
        client_id,
        contact_at,
        contact_date,
        campaign_id,
        offer_type,
        offer_value,
        outcome
    from {{ ref('int_contacts') }}
    where campaign_id is not null

),

targeting as (

    -- A campaign contact and the episode open on its date (on its return date the client
    -- is buying again: not targeted).
    select
        campaign_contacts.*,
        episodes.episode_number
    from campaign_contacts
    inner join {{ ref('int_lost_episode_segments') }} as episodes
        on
            campaign_contacts.client_id = episodes.client_id
            and campaign_contacts.contact_date >= episodes.lost_date
            and (episodes.return_date is null or campaign_contacts.contact_date < episodes.return_date)

),

per_episode as (

    select
        campaign_id,
        client_id,
        episode_number,
        min(contact_date) as entry_date,
        count(*) as campaign_contacts,
        bool_or(outcome is not null and outcome != 'no_answer') as is_reached,
        coalesce(sum(offer_value), 0) as offer_value,
        -- the first contact that names an offer decides the episode's offer type
        (array_agg(offer_type order by contact_at, contact_id) filter (where offer_type is not null))[1]
            as offer_type
    from targeting
    group by campaign_id, client_id, episode_number

)

select
    per_episode.campaign_id,
    per_episode.client_id,
    per_episode.episode_number,
    episodes.lost_date,
    episodes.lost_quarter,
    episodes.abc_class,
    per_episode.entry_date,
    coalesce(per_episode.offer_type, 'none') as offer_type,
    per_episode.offer_value,
    per_episode.campaign_contacts,
    per_episode.is_reached,
    episodes.return_date,
    {%- for days in windows %}
        coalesce(episodes.return_date - per_episode.entry_date <= {{ days }}, false) as returned_{{ days }}d,
        per_episode.entry_date + {{ days }} <= {{ as_of_date() }} as window_complete_{{ days }}d,
    {%- endfor %}
    episodes.revenue_recovered_90d,
    episodes.gross_margin_recovered_90d
from per_episode
inner join {{ ref('int_lost_episode_segments') }} as episodes
    on
        per_episode.client_id = episodes.client_id
        and per_episode.episode_number = episodes.episode_number
