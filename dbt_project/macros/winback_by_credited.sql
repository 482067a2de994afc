{#
    The BI views winback_by_manager and winback_by_channel, written once: won-back clients
    per quarter of return, by one attribute of the credited contact. `attributions` is
    the relation of fct_winback_attribution (the calling view passes its own ref),
    `attribute` its column to group by (attributed_manager_id, attributed_channel) and
    `credited_as` the name the view gives it. A return without a
    credited contact (no contact in the attribution window before it) counts as
    'not attributed'; a credited contact without the attribute as 'unknown'.
#}
{% macro winback_by_credited(attributions, attribute, credited_as) -%}
with credited as (

    select
        return_quarter as quarter_start,
        case
            when is_attributed then coalesce({{ attribute }}, 'unknown')
            else 'not attributed'
        end as {{ credited_as }},
        revenue_recovered_90d,
        days_from_contact_to_return,
        as_of_date
    from {{ attributions }}

)

select
    quarter_start,
    {{ credited_as }},
    count(*) as clients_won_back,
    sum(revenue_recovered_90d) as revenue_first_90_days,
    percentile_cont(0.5) within group (order by days_from_contact_to_return) as median_days_from_contact_to_return,
    max(as_of_date) as data_as_of_date
from credited
group by quarter_start, {{ credited_as }}
{%- endmacro %}
