{#
    The loyalty index 0-10 of a client (docs/metrics.md, "Value and loyalty"), on a fixed
    scale: each component gives 0-10 points by fixed breakpoints (dbt vars loyalty_*), not
    by ranking the client among others, so a client's index moves only with its own data
    and D. The index is the mean of the four components, and of the client's latest NPS
    answer (0-10) as a fifth when it has one, rounded to one decimal.

    loyalty_point_columns(): the four components as columns recency_points, frequency_points,
    monetary_points and tenure_points, from the columns days_since_last_purchase,
    purchase_days, abc_class and tenure_days (last - first purchase day) of the relation
    selected from. loyalty_points(component, value), one component:
    - recency: 10 on the day of a purchase, 0 after loyalty_recency_zero_days without one;
    - frequency: 10 from loyalty_frequency_full_days purchase days on;
    - tenure: 10 from loyalty_tenure_full_days between the first and the last purchase day;
    - monetary: the points of the ABC class (var loyalty_abc_points; none or N: 0).
#}
{% macro loyalty_points(component, value) -%}
{%- if component == 'recency' -%}
greatest(0, 10 * (1 - cast({{ value }} as numeric) / {{ var('loyalty_recency_zero_days') | int }}))
{%- elif component == 'frequency' -%}
least(10, 10 * cast({{ value }} as numeric) / {{ var('loyalty_frequency_full_days') | int }})
{%- elif component == 'tenure' -%}
least(10, 10 * cast({{ value }} as numeric) / {{ var('loyalty_tenure_full_days') | int }})
{%- elif component == 'monetary' -%}
{%- set abc_points = var('loyalty_abc_points') -%}
case {{ value }}
{%- for abc_class in abc_points | list | sort %} when '{{ abc_class }}' then {{ abc_points[abc_class] }}
{%- endfor %} else 0 end
{%- else -%}
{{ exceptions.raise_compiler_error("loyalty_points: unknown component " ~ component) }}
{%- endif -%}
{%- endmacro %}


{% macro loyalty_point_columns() -%}
{{ loyalty_points('recency', 'days_since_last_purchase') }} as recency_points,
{{ loyalty_points('frequency', 'purchase_days') }} as frequency_points,
{{ loyalty_points('monetary', 'abc_class') }} as monetary_points,
{{ loyalty_points('tenure', 'tenure_days') }} as tenure_points
{%- endmacro %}


{% macro loyalty_index(recency_points, frequency_points, monetary_points, tenure_points, nps_score) -%}
round(
    (
        {{ recency_points }} + {{ frequency_points }} + {{ monetary_points }} + {{ tenure_points }}
        + coalesce({{ nps_score }}, 0)
    ) / (case when {{ nps_score }} is null then 4 else 5 end),
    1
)
{%- endmacro %}


{# NPS answer category: promoter 9-10, passive 7-8, detractor 0-6. #}
{% macro nps_category(nps_score) -%}
case
    when {{ nps_score }} >= 9 then 'promoter'
    when {{ nps_score }} >= 7 then 'passive'
    when {{ nps_score }} >= 0 then 'detractor'
end
{%- endmacro %}
