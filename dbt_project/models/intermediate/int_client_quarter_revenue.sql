-- Client net revenue, cost and gross margin per calendar quarter (as of D; the running
-- quarter is partial), for quarters with at least one non-cancelled line.
--
-- Incremental by quarter: a nightly run rebuilds the quarters from the one holding the
-- earliest client-day recomputed since the last build (or dated after the last D) on,
-- usually just the running quarter; everything when D moved backwards. Quarters after
-- D's quarter are removed.

{{
    config(
        materialized='incremental',
        unique_key='quarter_start',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['quarter_start']}, {'columns': ['client_id', 'quarter_start']}],
        post_hook=["delete from {{ this }} where quarter_start > {{ quarter_start(as_of_date()) }}"]
    )
}}

-- depends_on: {{ ref('int_client_daily_revenue') }}

{% if is_incremental() %}
    {% set previous_as_of = last_build_mark('as_of_date') %}
    {% set rebuild_from %}
        case
            when {{ as_of_date() }} < {{ previous_as_of }} then cast('-infinity' as date)
            else {{ quarter_start("least(" ~ earliest_change() ~ ", " ~ previous_as_of ~ " + 1)") }}
        end
    {% endset %}
{% endif %}

select
    client_id,
    {{ quarter_start('order_date') }} as quarter_start,
    sum(net_amount) as net_amount,
    sum(cost_amount) as cost_amount,
    sum(gross_margin) as gross_margin,
    count(*) filter (where is_purchase_day) as purchase_days,
    sum(order_count) as order_count,
    {{ as_of_date() }} as as_of_date,
    {{ revenue_through() }} as processed_through
from {{ ref('int_client_days') }}
{% if is_incremental() %}
    where order_date >= coalesce({{ rebuild_from }}, cast('-infinity' as date))
{% endif %}
group by client_id, {{ quarter_start('order_date') }}
