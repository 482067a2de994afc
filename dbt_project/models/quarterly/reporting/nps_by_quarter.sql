-- BI view: the Net Promoter Score per quarter, for the company and per manager, with its
-- response counts (fct_nps_quarterly), newest quarter first.

select
    quarter_label,
    quarter_start,
    dimension,
    dimension_value,
    responses,
    promoters,
    passives,
    detractors,
    nps,
    {{ as_of_date() }} as data_as_of_date
from {{ ref('fct_nps_quarterly') }}
order by quarter_start desc, dimension desc, dimension_value asc
