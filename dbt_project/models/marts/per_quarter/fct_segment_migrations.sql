-- The segment migration matrix: per closed quarter end, segmentation and (from_class,
-- to_class) the number of clients and the sum of their window revenue at this quarter end.
--
-- Incremental by quarter like fct_segment_transitions (macros/changed_clients.sql,
-- quarters_to_rebuild): a night rebuilds the quarters that closed or whose client-days
-- changed. A small table (quarters x segmentations x class pairs): its as_of_date is
-- this run's D on every row (restamp_as_of_date()); computed_as_of and processed_through
-- are bookkeeping.

{{
    config(
        post_hook=[
            "{{ quarter_changes_post_hook(ref('int_quarters')) }}",
            "{{ restamp_as_of_date() }}"
        ]
    )
}}

{#- Read only by an incremental run; set here, outside that branch, so that dbt's graph
    shows it as a parent. -#}
{%- set quarters_relation = ref('int_quarters') %}

select
    quarter_end,
    segmentation,
    from_class,
    to_class,
    count(*) as clients,
    sum(window_revenue) as window_revenue,
    {{ as_of_date() }} as as_of_date,
    {{ build_marks(ref('int_client_daily_revenue')) }}
from {{ ref('fct_segment_transitions') }}
{% if is_incremental() %}
    where quarter_end in (
            select quarters.quarter_end from {{ quarters_relation }} as quarters
            where {{ quarters_to_rebuild('quarters', ref('int_client_daily_revenue')) }}
        )
{% endif %}
group by quarter_end, segmentation, from_class, to_class
