{#
    The ABC-XYZ class of each lost episode's client at the last quarter end before its
    lost_date (docs/metrics.md, the lost-client list): one row per episode of `episodes`
    (a relation or CTE with client_id, episode_number, lost_date) whose client had a class
    by then, with segment_quarter_end, abc_class, xyz_class and abc_xyz_class.
#}
{% macro segment_before_loss(episodes, segments) -%}
select distinct on (episodes.client_id, episodes.episode_number)
    episodes.client_id,
    episodes.episode_number,
    segments.quarter_end as segment_quarter_end,
    segments.abc_class,
    segments.xyz_class,
    segments.abc_xyz_class
from {{ episodes }} as episodes
inner join {{ segments }} as segments
    on
        episodes.client_id = segments.client_id
        and episodes.lost_date > segments.quarter_end
order by episodes.client_id asc, episodes.episode_number asc, segments.quarter_end desc
{%- endmacro %}
