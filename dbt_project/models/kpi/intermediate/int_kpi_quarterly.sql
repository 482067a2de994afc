-- The quarterly KPIs per (closed quarter, dimension, dimension_value), long format, from
-- int_kpi_members. dimension 'overall' (value 'all') holds the whole-company figures; the
-- others are manager, region, industry, sales_channel, loss_reason. Only combinations
-- with at least one member appear (kpi_quarterly fills quarters without any).
-- For loss_reason the client-based counts (active_clients_start, new_clients) do not
-- apply and are null, and so is churn_rate. A rate whose denominator is 0 is null.
-- lost_contacted_share is null too while no contact log was ever delivered: unknown, not 0
-- (a sales-lines-only export says nothing about contacts).

with members as (

    select * from {{ ref('int_kpi_members') }}

),

contact_log as (

    select exists(select 1 from {{ ref('stg_crm__contacts') }}) as is_delivered

),

unpivoted as (

    select
        members.*,
        dimensions.dimension,
        dimensions.dimension_value
    from members
    cross join
        lateral (
            values
            ('overall', 'all'),
            ('manager', members.manager_id),
            ('region', members.region),
            ('industry', members.industry),
            ('sales_channel', members.sales_channel),
            ('loss_reason', members.loss_reason)
        ) as dimensions (dimension, dimension_value)
    where dimensions.dimension_value is not null

),

aggregated as (

    select
        quarter_start,
        dimension,
        dimension_value,
        count(*) filter (where member_type = 'active_start') as active_clients_start,
        count(*) filter (where member_type = 'new') as new_clients,
        count(*) filter (where member_type = 'lost') as lost_clients,
        count(*) filter (where member_type = 'returned') as returned_clients,
        count(*) filter (where member_type = 'pool_start') as lost_pool_start,
        coalesce(sum(revenue_lost_ttm) filter (where member_type = 'lost'), 0) as revenue_lost_ttm,
        coalesce(
            sum(revenue_recovered_90d) filter (where member_type = 'returned'), 0
        ) as revenue_recovered_90d,
        coalesce(sum(gross_margin_lost_ttm) filter (where member_type = 'lost'), 0) as gross_margin_lost_ttm,
        coalesce(
            sum(gross_margin_recovered_90d) filter (where member_type = 'returned'), 0
        ) as gross_margin_recovered_90d,
        coalesce(
            bool_and(recovered_window_complete) filter (where member_type = 'returned'), true
        ) as is_window_complete,
        percentile_cont(0.5) within group (order by days_to_return)
        filter (where member_type = 'returned') as median_days_to_return,
        count(*) filter (where member_type = 'lost' and is_contacted_after_loss) as lost_contacted
    from unpivoted
    group by quarter_start, dimension, dimension_value

),

applicable as (

    select
        quarter_start,
        dimension,
        dimension_value,
        case when dimension != 'loss_reason' then active_clients_start end as active_clients_start,
        case when dimension != 'loss_reason' then new_clients end as new_clients,
        lost_clients,
        returned_clients,
        lost_pool_start,
        revenue_lost_ttm,
        revenue_recovered_90d,
        gross_margin_lost_ttm,
        gross_margin_recovered_90d,
        is_window_complete,
        median_days_to_return,
        lost_contacted
    from aggregated

)

select
    quarter_start,
    dimension,
    dimension_value,
    active_clients_start,
    new_clients,
    lost_clients,
    returned_clients,
    lost_pool_start,
    cast(lost_clients as double precision) / nullif(active_clients_start, 0) as churn_rate,
    cast(returned_clients as double precision) / nullif(lost_pool_start + lost_clients, 0) as winback_rate,
    revenue_lost_ttm,
    revenue_recovered_90d,
    gross_margin_lost_ttm,
    gross_margin_recovered_90d,
    is_window_complete,
    median_days_to_return,
    case
        when (select contact_log.is_delivered from contact_log)
            then cast(lost_contacted as double precision) / nullif(lost_clients, 0)
    end as lost_contacted_share
from applicable
