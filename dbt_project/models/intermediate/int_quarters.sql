-- The closed quarters as of D (last day <= D), from the quarter of the earliest purchase
-- day to the last closed quarter. Empty until there is a purchase day.

with bounds as (

    select min(purchase_date) as first_purchase_date
    from {{ ref('int_purchase_days') }}

),

quarter_starts as (

    select cast(quarter_series.quarter_start as date) as quarter_start
    from bounds
    cross join
        lateral generate_series(
            cast({{ quarter_start('bounds.first_purchase_date') }} as timestamp),
            cast({{ add_months(quarter_start(as_of_date() ~ ' + 1'), -3) }} as timestamp),
            interval '3 months'
        ) as quarter_series (quarter_start)
    where bounds.first_purchase_date is not null

)

select
    quarter_start,
    {{ quarter_end('quarter_start') }} as quarter_end,
    {{ add_months('quarter_start', -9) }} as segment_window_start,
    {{ add_months('quarter_start', -3) }} as previous_quarter_start,
    {{ add_months('quarter_start', -12) }} as same_quarter_last_year_start,
    extract(year from quarter_start) || '-Q' || extract(quarter from quarter_start) as quarter_label
from quarter_starts
