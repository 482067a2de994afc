-- The segment migration matrix: per quarter end, segmentation and (from_class, to_class)
-- the number of clients and the sum of their window revenue at this quarter end.
-- Incremental by quarter like int_segment_transitions (macros/changed_clients.sql);
-- as_of_date (the D of the run that last computed the row) and processed_through are
-- bookkeeping; the mart fct_segment_migrations is a view over this table.

{{
    config(
        materialized='incremental',
        unique_key='quarter_end',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook=["{{ quarter_changes_post_hook() }}"]
    )
}}

-- depends_on: {{ ref('int_client_daily_revenue') }}
-- depends_on: {{ ref('int_quarters') }}

select
    quarter_end,
    segmentation,
    from_class,
    to_class,
    count(*) as clients,
    sum(window_revenue) as window_revenue,
    {{ as_of_date() }} as as_of_date,
    {{ revenue_through() }} as processed_through
from {{ ref('int_segment_transitions') }}
{% if is_incremental() %}
    where quarter_end in (
            select quarters.quarter_end from {{ ref('int_quarters') }} as quarters
            where {{ quarters_to_rebuild('quarters') }}
        )
{% endif %}
group by quarter_end, segmentation, from_class, to_class
