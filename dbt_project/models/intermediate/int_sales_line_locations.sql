{{
    config(
        materialized='incremental',
        unique_key='line_id',
        indexes=[
            {'columns': ['line_id'], 'unique': True},
            {'columns': ['client_id', 'order_date']},
            {'columns': ['loaded_at']}
        ]
    )
}}

-- Where every sales line sits (client_id, order_date) and, when its latest re-delivery
-- moved it, where it sat before. int_client_daily_revenue reads the lines delivered
-- since its last run from here to know which client-days to recompute: a correction can
-- move a line away from a client-day, which then must be recomputed too.
-- Its indexes serve the nightly run: line_id for the delete+insert and the previous
-- location, (client_id, order_date) to find the lines of a touched client-day without
-- scanning the raw table, loaded_at for the high-water mark.

with delivered as (

    select
        line_id,
        client_id,
        order_date,
        loaded_at
    from {{ ref('stg_erp__sales_lines') }}
    {% if is_incremental() %}
        where loaded_at > {{ last_build_mark('loaded_at') }}
    {% endif %}

)

select
    delivered.line_id,
    delivered.client_id,
    delivered.order_date,
    delivered.loaded_at,
    {% if is_incremental() %}
        case
            when
                known.client_id != delivered.client_id
                or known.order_date != delivered.order_date
                then known.client_id
        end as previous_client_id,
        case
            when
                known.client_id != delivered.client_id
                or known.order_date != delivered.order_date
                then known.order_date
        end as previous_order_date
    {% else %}
        cast(null as text) as previous_client_id,
        cast(null as date) as previous_order_date
    {% endif %}
from delivered
{% if is_incremental() %}
    left join {{ this }} as known
        on delivered.line_id = known.line_id
{% endif %}
