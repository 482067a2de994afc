-- Return rates by lost cohort: for the episodes whose lost_date falls in a quarter (the
-- cohort; every quarter with an episode, the running one included), how many returned
-- within N days (return_date - lost_date <= N) for each N of var return_windows_days,
-- overall and per dimension (dimensions as assigned in fct_lost_episodes).
-- window_closed_N: every episode's lost_date + N <= D (the rate can no longer change).
{%- set windows = var('return_windows_days') %}

with episodes as (

    select
        {{ quarter_start('lost_date') }} as cohort_quarter,
        lost_date,
        is_returned,
        days_to_return,
        manager_id,
        region,
        industry,
        sales_channel,
        loss_reason
    from {{ ref('fct_lost_episodes') }}

),

unpivoted as (

    select
        episodes.*,
        dimensions.dimension,
        dimensions.dimension_value
    from episodes
    cross join lateral (
        values
        ('overall', 'all'),
        ('manager', episodes.manager_id),
        ('region', episodes.region),
        ('industry', episodes.industry),
        ('sales_channel', episodes.sales_channel),
        ('loss_reason', episodes.loss_reason)
    ) as dimensions (dimension, dimension_value)

),

aggregated as (

    select
        cohort_quarter,
        dimension,
        dimension_value,
        {%- for n in windows %}
            count(*) filter (where is_returned and days_to_return <= {{ n }}) as returned_within_{{ n }},
            bool_and(lost_date + {{ n }} <= {{ as_of_date() }}) as window_closed_{{ n }},
        {%- endfor %}
        count(*) as lost_episodes
    from unpivoted
    group by cohort_quarter, dimension, dimension_value

)

select
    cohort_quarter,
    dimension,
    dimension_value,
    lost_episodes,
    {%- for n in windows %}
        returned_within_{{ n }},
    {%- endfor %}
    {%- for n in windows %}
        cast(returned_within_{{ n }} as double precision) / nullif(lost_episodes, 0) as return_rate_{{ n }},
    {%- endfor %}
    {%- for n in windows %}
        window_closed_{{ n }},
    {%- endfor %}
    {{ as_of_date() }} as as_of_date
from aggregated
