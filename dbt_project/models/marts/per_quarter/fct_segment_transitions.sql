-- Each client's move between segment classes from the previous quarter end to this one,
-- for the three segmentations (abc, xyz, abc_xyz). from_class is 'N' when the client has
-- no row at the previous quarter end (it had no line yet, or E is the first quarter).
-- class_rank orders the classes (higher is better): abc A3 B2 C1 N0, xyz X3 Y2 Z1 N0,
-- abc_xyz = 4 x abc rank + xyz rank (AX best, N worst); direction compares the ranks.

--
-- Incremental by quarter, like fct_client_segments (macros/changed_clients.sql).

{{
    config(
        indexes=[{'columns': ['quarter_end']}, {'columns': ['client_id', 'quarter_end', 'segmentation'], 'unique': True}],
        post_hook=["{{ quarter_changes_post_hook(ref('int_quarters')) }}"]
    )
}}

with

{% if is_incremental() %}
    quarters as (

        select quarters.quarter_end
        from {{ ref('int_quarters') }} as quarters
        where {{ quarters_to_rebuild('quarters', ref('int_client_daily_revenue')) }}

    ),
{% endif %}

segments as (

    -- Incremental: the quarters to build and the quarter before each.
    select
        client_id,
        quarter_end,
        window_revenue,
        abc_class,
        xyz_class,
        abc_xyz_class,
        {{ quarter_start('quarter_end') }} - 1 as previous_quarter_end
    from {{ ref('fct_client_segments') }}
    {% if is_incremental() %}
        where quarter_end >= {{ add_months('(select min(quarters.quarter_end) from quarters)', -3) }}
    {% endif %}

),

paired as (

    select
        segments.client_id,
        segments.quarter_end,
        segments.window_revenue,
        coalesce(previous.abc_class, 'N') as from_abc,
        segments.abc_class as to_abc,
        coalesce(previous.xyz_class, 'N') as from_xyz,
        segments.xyz_class as to_xyz,
        coalesce(previous.abc_xyz_class, 'N') as from_abc_xyz,
        segments.abc_xyz_class as to_abc_xyz
    from segments
    left join segments as previous
        on
            segments.client_id = previous.client_id
            and segments.previous_quarter_end = previous.quarter_end
    {% if is_incremental() %}
        where segments.quarter_end in (select quarters.quarter_end from quarters)
    {% endif %}

),

unpivoted as (

    select
        paired.client_id,
        paired.quarter_end,
        paired.window_revenue,
        transitions.segmentation,
        transitions.from_class,
        transitions.to_class
    from paired
    cross join lateral (
        values
        ('abc', paired.from_abc, paired.to_abc),
        ('xyz', paired.from_xyz, paired.to_xyz),
        ('abc_xyz', paired.from_abc_xyz, paired.to_abc_xyz)
    ) as transitions (segmentation, from_class, to_class)

),

ranked as (

    select
        client_id,
        quarter_end,
        window_revenue,
        segmentation,
        from_class,
        to_class,
        {{ segment_class_rank('from_class') }} as from_rank,
        {{ segment_class_rank('to_class') }} as to_rank
    from unpivoted

)

select
    client_id,
    quarter_end,
    segmentation,
    from_class,
    to_class,
    window_revenue,
    case
        when to_rank > from_rank then 'up'
        when to_rank < from_rank then 'down'
        else 'same'
    end as direction,
    {{ build_marks(ref('int_client_daily_revenue')) }}
from ranked
