{#
    The early-warning list's rules (docs/metrics.md, "Clients at risk"), in one place for
    the list as of D (at_risk_clients) and its backtest as of past dates
    (fct_early_warning_backtest).
#}

{# Quiet for longer than the client's own rhythm allows (no rhythm: a fixed number of days). #}
{% macro at_risk_is_overdue(days_since_last_purchase, median_gap_days) -%}
    case
        when {{ median_gap_days }} is null
            then {{ days_since_last_purchase }} > {{ var('at_risk_no_rhythm_days') }}
        else {{ days_since_last_purchase }} > {{ var('at_risk_gap_factor') }} * {{ median_gap_days }}
    end
{%- endmacro %}


{# Revenue of the last window well below the same days a year before (arguments never null). #}
{% macro at_risk_is_declining(revenue_recent, revenue_year_before) -%}
    (
        {{ revenue_year_before }} > 0
        and {{ revenue_recent }} < (1 - {{ var('at_risk_decline_share') }}) * {{ revenue_year_before }}
    )
{%- endmacro %}
