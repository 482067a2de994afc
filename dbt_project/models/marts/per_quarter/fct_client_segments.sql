-- ABC-XYZ class of every client at every closed quarter end E (int_quarters), for the
-- clients with at least one non-cancelled line dated <= E.
--
-- Window: the four calendar quarters ending with E's quarter (12 months).
-- ABC on the window's net revenue, or with var abc_basis = gross_margin on its gross
--   margin (the measure): among clients with a measure > 0, ordered by it desc then
--   client_id: revenue_before = the measure of the clients ranked before; A if
--   revenue_before < abc_a_share x total, B if < abc_b_share x total, else C (exact
--   numeric comparisons, the same as share_before < 0.80). A measure <= 0: N.
-- XYZ for classed clients, over the 12 monthly net revenues (months without sales are 0):
--   CV = population sd / mean; X if CV <= xyz_x_max_cv, Y if <= xyz_y_max_cv, else Z.
--   Compared exactly: CV^2 = (12 * sum(m^2) - sum(m)^2) / sum(m)^2, so
--   CV <= c  <=>  12 * sum(m^2) - sum(m)^2 <= c^2 * sum(m)^2.

--
-- Incremental by quarter (macros/changed_clients.sql, quarters_to_rebuild): a nightly run
-- builds only the quarters that closed or whose client-days changed since.

{{
    config(
        indexes=[{'columns': ['quarter_end']}, {'columns': ['client_id', 'quarter_end'], 'unique': True}],
        post_hook=["{{ quarter_changes_post_hook(ref('int_quarters')) }}"]
    )
}}

with quarters as (

    select
        quarters.quarter_end,
        quarters.segment_window_start
    from {{ ref('int_quarters') }} as quarters
    where {{ quarters_to_rebuild('quarters', ref('int_client_daily_revenue')) }}

),

client_days as (

    -- Only the windows of the quarters to build (nothing when there is none).
    select
        client_id,
        order_date,
        net_amount,
        gross_margin
    from {{ ref('int_client_days') }}
    where
        order_date >= (select min(quarters.segment_window_start) from quarters)
        and order_date <= (select max(quarters.quarter_end) from quarters)

),

first_lines as (

    -- A client is in the population of E from its first line on (on or before D >= E).
    select
        client_id,
        first_line_date
    from {{ ref('int_client_histories') }}

),

months as (

    select
        client_id,
        {{ month_start('order_date') }} as month_start,
        sum(net_amount) as net_amount,
        sum(gross_margin) as gross_margin
    from client_days
    group by client_id, {{ month_start('order_date') }}

),

population as (

    select
        quarters.quarter_end,
        quarters.segment_window_start,
        first_lines.client_id
    from quarters
    inner join first_lines
        on quarters.quarter_end >= first_lines.first_line_date

),

windows as (

    select
        population.client_id,
        population.quarter_end,
        coalesce(sum(months.net_amount), 0) as window_revenue,
        coalesce(sum(months.gross_margin), 0) as window_gross_margin,
        coalesce(sum(months.net_amount * months.net_amount), 0) as window_sum_of_squares
    from population
    left join months
        on
            population.client_id = months.client_id
            and months.month_start between population.segment_window_start and population.quarter_end
    group by population.client_id, population.quarter_end

),

{%- set measure = 'window_gross_margin' if var('abc_basis') == 'gross_margin' else 'window_revenue' %}

ranked as (

    select
        client_id,
        quarter_end,
        row_number() over by_measure as abc_rank,
        coalesce(sum({{ measure }}) over (
            by_measure rows between unbounded preceding and 1 preceding
        ), 0) as revenue_before,
        sum({{ measure }}) over (partition by quarter_end) as total_revenue
    from windows
    where {{ measure }} > 0
    window by_measure as (partition by quarter_end order by {{ measure }} desc, client_id asc)

),

classed as (

    select
        windows.client_id,
        windows.quarter_end,
        windows.window_revenue,
        windows.window_gross_margin,
        ranked.abc_rank,
        ranked.revenue_before / ranked.total_revenue as share_before,
        case
            when ranked.client_id is null then 'N'
            when ranked.revenue_before < {{ var('abc_a_share') }} * ranked.total_revenue then 'A'
            when ranked.revenue_before < {{ var('abc_b_share') }} * ranked.total_revenue then 'B'
            else 'C'
        end as abc_class,
        -- 12 x the variance of the monthly revenues over the mean squared, times sum^2
        12 * windows.window_sum_of_squares - windows.window_revenue * windows.window_revenue as scaled_variance,
        windows.window_revenue * windows.window_revenue as scaled_mean_squared
    from windows
    left join ranked
        on
            windows.client_id = ranked.client_id
            and windows.quarter_end = ranked.quarter_end

),

segmented as (

    select
        client_id,
        quarter_end,
        window_revenue,
        window_gross_margin,
        abc_rank,
        share_before,
        abc_class,
        case
            when abc_class = 'N' then null
            else round(sqrt(greatest(scaled_variance, 0)) / nullif(window_revenue, 0), 4)
        end as xyz_cv,
        case
            when abc_class = 'N' then 'N'
            when scaled_variance <= {{ var('xyz_x_max_cv') }} * {{ var('xyz_x_max_cv') }} * scaled_mean_squared then 'X'
            when scaled_variance <= {{ var('xyz_y_max_cv') }} * {{ var('xyz_y_max_cv') }} * scaled_mean_squared then 'Y'
            else 'Z'
        end as xyz_class
    from classed

)

select
    client_id,
    quarter_end,
    window_revenue,
    window_gross_margin,
    abc_rank,
    share_before,
    abc_class,
    xyz_cv,
    xyz_class,
    case when abc_class = 'N' then 'N' else abc_class || xyz_class end as abc_xyz_class,
    {{ build_marks(ref('int_client_daily_revenue')) }}
from segmented
