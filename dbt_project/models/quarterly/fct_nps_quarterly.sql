-- Net Promoter Score per closed quarter (docs/metrics.md, "NPS per quarter"), for the
-- company and per manager (the client's current manager, 'unknown' without a clients row).
-- A client who answered more than once in a quarter counts once, with its latest answer
-- (the greatest contact_at, a tie to the greatest contact_id). Promoters answer 9-10,
-- passives 7-8, detractors 0-6; nps = 100 x (promoters - detractors) / responses.
-- Built by the quarterly DAG (tag quarterly).

with answers as (

    select distinct on (quarters.quarter_start, contacts.client_id)
        quarters.quarter_start,
        contacts.client_id,
        contacts.nps_score
    from {{ ref('int_contacts') }} as contacts
    inner join {{ ref('int_quarters') }} as quarters
        on contacts.contact_date between quarters.quarter_start and quarters.quarter_end
    where contacts.nps_score is not null
    order by quarters.quarter_start asc, contacts.client_id asc, contacts.contact_at desc, contacts.contact_id desc

),

by_dimension as (

    select
        answers.quarter_start,
        dimensions.dimension,
        dimensions.dimension_value,
        answers.nps_score
    from answers
    left join {{ ref('int_clients') }} as clients
        on answers.client_id = clients.client_id
    cross join
        lateral (
            values
            ('overall', 'all'),
            ('manager', coalesce(clients.manager_id, 'unknown'))
        ) as dimensions (dimension, dimension_value)

),

counted as (

    select
        quarter_start,
        dimension,
        dimension_value,
        count(*) as responses,
        count(*) filter (where nps_score >= 9) as promoters,
        count(*) filter (where nps_score between 7 and 8) as passives,
        count(*) filter (where nps_score <= 6) as detractors
    from by_dimension
    group by quarter_start, dimension, dimension_value

)

select
    quarters.quarter_start,
    quarters.quarter_end,
    quarters.quarter_label,
    counted.dimension,
    counted.dimension_value,
    counted.responses,
    counted.promoters,
    counted.passives,
    counted.detractors,
    round(100.0 * (counted.promoters - counted.detractors) / counted.responses, 1) as nps,
    {{ as_of_date() }} as as_of_date
from counted
inner join {{ ref('int_quarters') }} as quarters
    on counted.quarter_start = quarters.quarter_start
