-- Every member has exactly one value per dimension, so per quarter and dimension the
-- breakdown's counts add up to kpi_quarterly (client counts do not apply to loss_reason).

with breakdown as (

    select
        quarter_start,
        dimension,
        sum(active_clients_start) as active_clients_start,
        sum(new_clients) as new_clients,
        sum(lost_clients) as lost_clients,
        sum(returned_clients) as returned_clients,
        sum(lost_pool_start) as lost_pool_start,
        sum(revenue_lost_ttm) as revenue_lost_ttm
    from {{ ref('kpi_quarterly_breakdown') }}
    group by quarter_start, dimension

)

select
    breakdown.quarter_start,
    breakdown.dimension
from breakdown
inner join {{ ref('kpi_quarterly') }} as overall
    on breakdown.quarter_start = overall.quarter_start
where
    breakdown.lost_clients != overall.lost_clients
    or breakdown.returned_clients != overall.returned_clients
    or breakdown.lost_pool_start != overall.lost_pool_start
    or breakdown.revenue_lost_ttm != overall.revenue_lost_ttm
    or (
        breakdown.dimension != 'loss_reason'
        and (
            breakdown.active_clients_start != overall.active_clients_start
            or breakdown.new_clients != overall.new_clients
        )
    )
