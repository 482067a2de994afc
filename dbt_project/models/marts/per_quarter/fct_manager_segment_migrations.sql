-- Segment migrations per manager (the client's current manager): per quarter end and
-- segmentation, how many of the manager's clients moved up, down or stayed
-- (see fct_segment_transitions for the class order).
-- Incremental by quarter like fct_segment_migrations; every quarter is rebuilt when a
-- CRM row of a client with segment history was delivered since (a reassigned client
-- moves to its new manager in every quarter). computed_as_of and processed_through are
-- bookkeeping.

{{ config(post_hook=["{{ quarter_changes_post_hook(ref('int_quarters')) }}"]) }}

{#- Read only by an incremental run; set here, outside that branch, so that dbt's graph
    shows them as parents. -#}
{%- set quarters_relation = ref('int_quarters') %}
{%- set segments_relation = ref('fct_client_segments') %}

select
    transitions.quarter_end,
    coalesce(clients.manager_id, 'unknown') as manager_id,
    transitions.segmentation,
    count(*) as clients,
    count(*) filter (where transitions.direction = 'up') as clients_up,
    count(*) filter (where transitions.direction = 'down') as clients_down,
    count(*) filter (where transitions.direction = 'same') as clients_same,
    {{ build_marks(ref('int_client_daily_revenue')) }}
from {{ ref('fct_segment_transitions') }} as transitions
left join {{ ref('int_clients') }} as clients
    on transitions.client_id = clients.client_id
{% if is_incremental() %}
    where
        transitions.quarter_end in (
            select quarters.quarter_end from {{ quarters_relation }} as quarters
            where {{ quarters_to_rebuild('quarters', ref('int_client_daily_revenue')) }}
        )
        -- A count, not EXISTS: for EXISTS PostgreSQL plans on finding a first match early
        -- and, when there is none (only new clients delivered), scanned every segment row
        -- once per delivered client. Counting makes it look them up by key.
        or (
            select count(*)
            from {{ ref('int_clients') }} as delivered
            inner join {{ segments_relation }} as segmented
                on delivered.client_id = segmented.client_id
            where delivered.loaded_at > {{ last_build_mark('processed_through') }}
        ) > 0
{% endif %}
group by transitions.quarter_end, coalesce(clients.manager_id, 'unknown'), transitions.segmentation
