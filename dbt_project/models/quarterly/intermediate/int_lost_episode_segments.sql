-- Every lost episode with the client's ABC class at the last quarter end before its
-- lost_date (docs/metrics.md: the segment of the lost-client list), 'unclassified' when the
-- loss came before the client's first quarter end; and the quarter of its lost_date.
-- The campaign figures group and match lost episodes by these two.

with episodes as (

    select
        client_id,
        episode_number,
        lost_date,
        return_date,
        is_returned,
        revenue_recovered_90d,
        gross_margin_recovered_90d
    from {{ ref('fct_lost_episodes') }}

),

segment_before_loss as (

    {{ segment_before_loss('episodes', ref('fct_client_segments')) }}

)

select
    episodes.client_id,
    episodes.episode_number,
    episodes.lost_date,
    {{ quarter_start('episodes.lost_date') }} as lost_quarter,
    episodes.return_date,
    episodes.is_returned,
    episodes.revenue_recovered_90d,
    episodes.gross_margin_recovered_90d,
    coalesce(segment_before_loss.abc_class, 'unclassified') as abc_class
from episodes
left join segment_before_loss
    on
        episodes.client_id = segment_before_loss.client_id
        and episodes.episode_number = segment_before_loss.episode_number
